//! `order-raft`: one replica of the order service.
//!
//! Three replicas form an openraft group. Orders are Raft log entries ([`types`]), applied to
//! a state machine that numbers them densely; log and state machine live in one RocksDB per
//! replica ([`store`]). Replicas talk Raft over HTTP with bincode bodies ([`network`]). The
//! leader batches concurrent orders into one entry ([`batcher`]); every replica serves the
//! order API and forwards to the leader when it is not the leader itself ([`node`],
//! [`routes`]).

pub mod batcher;
pub mod buyer;
pub mod error;
pub mod network;
pub mod node;
mod routes;
pub mod store;
pub mod types;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use api::client::ServiceClient;
use api::cluster::NodeAddrs;
use api::server::{self, ServerHandle};
use clap::Parser;
use openraft::error::{InitializeError, RaftError};
use openraft::{BasicNode, SnapshotPolicy};
use prometheus_client::registry::Registry;

use batcher::OrderBatcher;
use buyer::CatalogBuyer;
pub use error::OrderError;
use network::HttpNetwork;
use node::{Faults, NodeMetrics, OrderNode};
use types::{NodeId, Raft};

/// How a replica is run. Every flag has an environment variable.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "order-raft",
    about = "One replica of the toy store's Raft-replicated order service"
)]
pub struct Config {
    /// This replica's id (1, 2, 3, …); must appear in --nodes.
    #[arg(long, env = "TOYSTORE_NODE_ID")]
    pub id: NodeId,

    /// Every replica as ID=URL pairs, comma-separated: the address book for Raft RPCs and
    /// forwarding.
    #[arg(long, env = "TOYSTORE_NODES", default_value = api::defaults::ORDER_NODES)]
    pub nodes: NodeAddrs,

    /// Address to listen on. Default: the host:port of this replica's URL in --nodes.
    #[arg(long, env = "TOYSTORE_NODE_ADDR")]
    pub listen: Option<SocketAddr>,

    /// Directory of this replica's RocksDB. Default: data/node-ID.
    #[arg(long, env = "TOYSTORE_NODE_DATA")]
    pub data_dir: Option<PathBuf>,

    /// Base URL of the catalog.
    #[arg(
        long,
        env = "TOYSTORE_CATALOG_URL",
        default_value = "http://127.0.0.1:8100"
    )]
    pub catalog: String,

    /// Initialize the Raft group with every replica in --nodes if this replica's log is empty.
    /// Safe on every start (an initialized group ignores it). Give it to one replica: replicas
    /// bootstrapped together campaign together, which costs a second election.
    #[arg(long, env = "TOYSTORE_BOOTSTRAP", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub bootstrap: bool,

    /// Leader heartbeat interval, in milliseconds. The three timing defaults are openraft's
    /// own; on loopback they held under full load without a spurious election (README).
    #[arg(
        long = "heartbeat-ms",
        env = "TOYSTORE_HEARTBEAT_MS",
        default_value_t = 50
    )]
    pub heartbeat_ms: u64,

    /// Shortest election timeout, in milliseconds.
    #[arg(
        long = "election-min-ms",
        env = "TOYSTORE_ELECTION_MIN_MS",
        default_value_t = 150
    )]
    pub election_min_ms: u64,

    /// Longest election timeout, in milliseconds.
    #[arg(
        long = "election-max-ms",
        env = "TOYSTORE_ELECTION_MAX_MS",
        default_value_t = 300
    )]
    pub election_max_ms: u64,

    /// Deadline for committing an order (and for confirming leadership before a read), in
    /// milliseconds. An isolated leader answers 503 after it.
    #[arg(long = "write-timeout-ms", env = "TOYSTORE_WRITE_TIMEOUT_MS", default_value = "2000",
          value_parser = api::cli::millis)]
    pub write_timeout: Duration,

    /// Most orders folded into one Raft entry; 1 turns batching off.
    #[arg(long, env = "TOYSTORE_BATCH_MAX", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub batch_max: u64,

    /// Build a snapshot every this many log entries.
    #[arg(long, env = "TOYSTORE_SNAPSHOT_EVERY", default_value_t = 5000)]
    pub snapshot_every: u64,

    /// Log entries to keep after a snapshot (lagging followers within this catch up by log).
    #[arg(long, env = "TOYSTORE_KEEP_LOGS", default_value_t = 1000)]
    pub keep_logs: u64,

    /// Shared secret for internal endpoints and Raft RPCs (X-Cluster-Token). Unset: not checked.
    #[arg(long, env = "TOYSTORE_CLUSTER_TOKEN", hide_env_values = true)]
    pub cluster_token: Option<String>,

    /// Serve `POST /faults` (tests and chaos runs only): lets a caller crash this replica at
    /// chosen points.
    #[arg(long, env = "TOYSTORE_FAULT_INJECTION", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub fault_injection: bool,
}

impl Config {
    /// A configuration for tests.
    pub fn for_test(id: NodeId, nodes: NodeAddrs, data_dir: PathBuf, catalog: &str) -> Self {
        let mut config = Self::parse_from(["order-raft", "--id", "1"]);
        config.id = id;
        config.nodes = nodes;
        config.data_dir = Some(data_dir);
        config.catalog = catalog.to_string();
        // The lowest id initializes the group; the others join when it contacts them.
        config.bootstrap = config.nodes.ids().next() == Some(id);
        // Unoptimized builds of several clusters share two cores in a test run: generous
        // timeouts keep a busy scheduler from passing for a dead leader.
        config.heartbeat_ms = 100;
        config.election_min_ms = 600;
        config.election_max_ms = 1200;
        config
    }

    fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("data/node-{}", self.id)))
    }

    fn listen_addr(&self) -> Result<SocketAddr, OrderError> {
        if let Some(addr) = self.listen {
            return Ok(addr);
        }
        let url = self.nodes.get(self.id).ok_or_else(|| {
            OrderError::Startup(format!(
                "node {} is not in --nodes ({})",
                self.id, self.nodes
            ))
        })?;
        url.trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .map_err(|_| {
                OrderError::Startup(format!("cannot listen on {url}: give --listen IP:PORT"))
            })
    }

    fn raft_config(&self) -> Result<openraft::Config, OrderError> {
        let config = openraft::Config {
            cluster_name: "toystore-orders".into(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_min_ms,
            election_timeout_max: self.election_max_ms,
            install_snapshot_timeout: 5_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.keep_logs,
            replication_lag_threshold: self.snapshot_every.saturating_mul(2),
            ..Default::default()
        };
        config
            .validate()
            .map_err(|err| OrderError::Startup(format!("bad Raft settings: {err}")))
    }
}

/// Opens the replica's store, starts Raft and serves HTTP.
pub async fn serve(config: Config) -> Result<ServerHandle, OrderError> {
    let listen = config.listen_addr()?;
    let raft_config = Arc::new(config.raft_config()?);
    let data_dir = config.data_dir();
    std::fs::create_dir_all(&data_dir).map_err(|err| {
        OrderError::Startup(format!("cannot create {}: {err}", data_dir.display()))
    })?;
    let (log_store, state_machine) = {
        let dir = data_dir.clone();
        tokio::task::spawn_blocking(move || store::open(&dir))
            .await
            .map_err(|err| OrderError::Startup(err.to_string()))??
    };
    let reader = state_machine.reader();

    let token: Option<Arc<str>> = config.cluster_token.as_deref().map(Arc::from);
    let peers = Arc::new(config.nodes.clone());
    let network = HttpNetwork::new(peers.clone(), token.clone());
    let raft = Raft::new(config.id, raft_config, network, log_store, state_machine)
        .await
        .map_err(|err| OrderError::Startup(format!("cannot start Raft: {err}")))?;
    if config.bootstrap {
        bootstrap(&raft, &config.nodes).await?;
    }

    let mut registry = Registry::with_prefix("order");
    let metrics = NodeMetrics::register(&mut registry);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (batcher, batcher_task) = OrderBatcher::start(
        raft.clone(),
        config.batch_max as usize,
        config.write_timeout,
        metrics.batch_size.clone(),
        shutdown.clone(),
    );
    // One catalog buy plus one forwarded write must fit in a forwarded call's deadline.
    let client = ServiceClient::new(config.write_timeout * 2, token.clone());
    let (buyer, buyer_task) = CatalogBuyer::start(
        client.clone(),
        &config.catalog,
        config.batch_max as usize,
        metrics.buy_batch_size.clone(),
        shutdown.clone(),
    );
    let node = Arc::new(OrderNode {
        id: config.id,
        raft: raft.clone(),
        reader,
        metrics: metrics.clone(),
        faults: Faults::default(),
        peers,
        batcher,
        buyer,
        client,
        selected_leader: AtomicU64::new(0),
        read_timeout: config.write_timeout,
    });

    let listener = server::bind(listen).await?;
    let router = server::finish(
        routes::router(node, token, config.fault_injection),
        registry,
    );
    let mut handle = server::spawn(listener, router, "order-raft")?;
    handle.attach(tokio::spawn(node::mirror_raft_metrics(
        raft.clone(),
        metrics,
    )));
    if let Some(task) = batcher_task {
        handle.attach(task);
    }
    if let Some(task) = buyer_task {
        handle.attach(task);
    }
    let stop = handle.shutdown_token();
    handle.attach(tokio::spawn(async move {
        stop.cancelled().await;
        shutdown.cancel();
        if let Err(err) = raft.shutdown().await {
            tracing::warn!(%err, "raft did not shut down cleanly");
        }
    }));
    tracing::info!(
        id = config.id,
        addr = %handle.addr(),
        data_dir = %data_dir.display(),
        nodes = %config.nodes,
        batch_max = config.batch_max,
        "order replica ready"
    );
    Ok(handle)
}

/// Initializes the group with every replica of the address book, once.
async fn bootstrap(raft: &Raft, nodes: &NodeAddrs) -> Result<(), OrderError> {
    let members: BTreeMap<NodeId, BasicNode> = nodes
        .iter()
        .map(|(id, url)| (id, BasicNode::new(url.trim_start_matches("http://"))))
        .collect();
    match raft.initialize(members).await {
        Ok(()) => {
            tracing::info!(members = %nodes, "initialized the Raft group");
            Ok(())
        }
        Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
            tracing::info!("the Raft group is already initialized");
            Ok(())
        }
        Err(err) => Err(OrderError::Startup(format!(
            "cannot initialize the Raft group: {err}"
        ))),
    }
}
