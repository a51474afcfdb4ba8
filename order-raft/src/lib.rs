//! `order-raft`: one replica of the order service.
//!
//! Three replicas form an openraft group. Orders are Raft log entries ([`types`]), applied to
//! a state machine that numbers them densely; log and state machine live in one RocksDB per
//! replica ([`store`]). Replicas talk Raft over HTTP with bincode bodies ([`network`]). The
//! leader reserves stock at the catalog in batches ([`reserver`]), folds concurrent orders into
//! one entry ([`batcher`]), and settles every reservation as the log decided ([`settlement`]);
//! every replica serves the order API and forwards to the leader when it is not
//! the leader itself ([`node`], [`routes`]). `/health` says whether the replica can serve
//! ([`health`]), and leadership follows the front-end's selection ([`leadership`]).

pub mod batcher;
pub mod config;
pub mod error;
pub mod faults;
pub mod health;
pub mod leadership;
pub mod metrics;
pub mod network;
pub mod node;
pub mod read_index;
pub mod reserver;
mod routes;
pub mod settlement;
pub mod store;
pub mod types;

use std::collections::BTreeMap;
use std::sync::Arc;

use api::catalog::CatalogClient;
use api::cli::ClusterToken;
use api::client::ServiceClient;
use api::cluster::{NodeAddrs, authority};
use api::order::ReplicaClient;
use api::server::{self, Failure, ServerHandle};
use openraft::BasicNode;
use openraft::async_runtime::WatchReceiver;
use openraft::error::{InitializeError, RaftError};
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use batcher::OrderBatcher;
pub use config::Config;
pub use error::{OrderError, StartError};
use faults::Faults;
use health::{LeaderContact, Readiness};
use leadership::{LeaderGate, Leadership};
use metrics::NodeMetrics;
use network::HttpNetwork;
use node::{OrderNode, OrderPath, Replica};
use read_index::ReadIndex;
use reserver::CatalogReserver;
use settlement::{Settler, SweepMetrics, Sweeper};
use types::{NodeId, Raft};

/// Opens the replica's store, starts Raft and serves HTTP.
pub async fn serve(config: Config) -> Result<ServerHandle, StartError> {
    // Before anything else: no token and no --insecure is a configuration error.
    let token = config.auth.token().map_err(StartError::Config)?;
    if token.is_none() {
        tracing::warn!("--insecure: internal endpoints and Raft RPCs accept calls without a token");
    }
    let secret = token.as_ref().map(ClusterToken::expose);
    let listen = config.listen_addr()?;
    let timings = config.leadership_timings();
    let replica = start_raft(&config, secret.clone(), timings.lease).await?;
    let mut registry = Registry::with_prefix("order");
    let metrics = NodeMetrics::register(&mut registry);
    let shutdown = CancellationToken::new();
    let gate = LeaderGate::default();
    // Every call carries its own deadline; this one only bounds calls that do not.
    let max_budget = config.reservation_timeout / 2;
    let client = ServiceClient::new(max_budget, secret);
    let (path, sweeper, path_tasks) =
        start_order_path(&config, &replica, &gate, &metrics, &client, &shutdown);
    let mut peers = ReplicaClient::all(&config.peers.nodes, &client);
    peers.remove(&config.id);
    let (raft, reader, contact, readiness) = (
        replica.raft.clone(),
        replica.reader.clone(),
        replica.contact.clone(),
        replica.readiness.clone(),
    );
    let (node, selected) = OrderNode::new(
        replica,
        path,
        peers.clone(),
        metrics.clone(),
        max_budget,
        timings.lease,
    );
    let node = Arc::new(node);

    let listener = server::bind(listen).await?;
    let router = server::finish(
        routes::router(node.clone(), token, config.fault_injection),
        registry,
        routes::health(node),
    );
    let mut handle = server::spawn_with(
        listener,
        router,
        "order-raft",
        shutdown.clone(),
        config.serve.limits(),
    )?;
    let leadership = Leadership::new(
        config.id,
        raft.clone(),
        selected,
        contact,
        gate,
        timings,
        peers,
    );
    handle.attach(tokio::spawn(leadership.run(shutdown.clone())));
    handle.attach(tokio::spawn(watch_raft_core(
        raft.clone(),
        readiness,
        config.exit_on_raft_failure.then(|| handle.failure()),
        shutdown.clone(),
    )));
    handle.attach(tokio::spawn(metrics::mirror_raft_metrics(
        raft.clone(),
        reader,
        metrics,
    )));
    for task in path_tasks {
        handle.attach(task);
    }
    handle.attach(tokio::spawn(sweeper.run(shutdown.clone())));
    handle.attach(tokio::spawn(async move {
        shutdown.cancelled().await;
        if let Err(err) = raft.shutdown().await {
            tracing::warn!(%err, "raft did not shut down cleanly");
        }
    }));
    tracing::info!(
        id = config.id,
        addr = %handle.addr(),
        data_dir = %config.data_dir().display(),
        nodes = %config.peers.nodes,
        batch_max = config.batch.batch_max,
        "order replica ready"
    );
    Ok(handle)
}

/// Opens the store and starts Raft, bootstrapping the group with `--bootstrap`. A replica coming
/// back needs no care here: pre-vote (`Config::raft_config`) keeps it from deposing a leader it
/// has not heard from yet.
async fn start_raft(
    config: &Config,
    token: Option<Arc<str>>,
    lease: std::time::Duration,
) -> Result<Replica, StartError> {
    let raft_config = Arc::new(config.raft_config()?);
    let data_dir = config.data_dir();
    std::fs::create_dir_all(&data_dir).map_err(|err| {
        StartError::Config(format!("cannot create {}: {err}", data_dir.display()))
    })?;
    let (log_store, state_machine) = {
        let dir = data_dir.clone();
        let retention = config.retention.dedup_retention;
        let crash_mid_install = config.fault_injection && config.fault_crash_mid_install;
        tokio::task::spawn_blocking(move || store::open(&dir, retention, crash_mid_install))
            .await
            .map_err(|err| StartError::Raft(err.to_string()))??
    };
    let reader = state_machine.reader();
    let snapshots = network::SnapshotReceiver::new(state_machine.inbox());

    let network = HttpNetwork::new(Arc::new(config.peers.nodes.clone()), token);
    let raft = Raft::new(config.id, raft_config, network, log_store, state_machine)
        .await
        .map_err(|err| StartError::Raft(err.to_string()))?;
    let contact = Arc::new(LeaderContact::default());
    if config.bootstrap {
        bootstrap(&raft, &config.peers.nodes).await?;
    }
    let readiness = Arc::new(Readiness::new(raft.clone(), contact.clone(), lease));
    let replica = Replica {
        id: config.id,
        raft,
        reader,
        readiness,
        contact,
        snapshots,
    };
    Ok(replica)
}

/// Starts the leader's order path (read index, batcher, reserver, settler) and the sweeper.
/// Returns the path, the sweeper (not started) and the path's tasks.
fn start_order_path(
    config: &Config,
    replica: &Replica,
    gate: &LeaderGate,
    metrics: &NodeMetrics,
    client: &ServiceClient,
    shutdown: &CancellationToken,
) -> (OrderPath, Sweeper, Vec<JoinHandle<()>>) {
    let mut tasks = Vec::new();
    let (read_index, read_index_task) = ReadIndex::start(
        replica.raft.clone(),
        gate.clone(),
        config.confirm_timeout,
        metrics.read_index_batch_size.clone(),
        shutdown.clone(),
    );
    tasks.push(read_index_task);
    // Armed only with --fault-injection (the command line requires it too).
    let faults = match config.fault_injection {
        true => Faults::new(&config.breaks, &replica.reader),
        false => Faults::default(),
    };
    let (batcher, batcher_task) = OrderBatcher::start(
        replica.raft.clone(),
        gate.clone(),
        config.batch.batch_max as usize,
        metrics.batch_size.clone(),
        faults.clone(),
        shutdown.clone(),
    );
    tasks.extend(batcher_task);
    let catalog = CatalogClient::new(config.peers.catalog.clone(), client.clone());
    let (reserver, reserver_task) = CatalogReserver::start(
        catalog.clone(),
        config.batch.batch_max as usize,
        metrics.reserve_batch_size.clone(),
        shutdown.clone(),
    );
    tasks.extend(reserver_task);
    let (settler, settler_task) = Settler::start(
        catalog.clone(),
        config.batch.batch_max as usize,
        metrics.settle_batch_size.clone(),
        shutdown.clone(),
    );
    tasks.push(settler_task);
    let sweeper = Sweeper {
        raft: replica.raft.clone(),
        gate: gate.clone(),
        catalog,
        settler: settler.clone(),
        bound: config.reservation_timeout,
        metrics: SweepMetrics {
            released: metrics.reservations_released.clone(),
            confirmed: metrics.reservations_confirmed_late.clone(),
        },
    };
    let path = OrderPath {
        batcher,
        reserver,
        settler,
        read_index,
        faults,
    };
    (path, sweeper, tasks)
}

/// Watches for the Raft core stopping without being asked to (a fatal storage error, a
/// panic in the core): `/health` then says `raft stopped`, and with `failure` the replica
/// shuts down and its process exits non-zero, so `cluster/status.sh` and a supervisor see it.
async fn watch_raft_core(
    raft: Raft,
    readiness: Arc<Readiness>,
    failure: Option<Failure>,
    shutdown: CancellationToken,
) {
    let mut metrics = raft.metrics();
    let fatal = loop {
        if let Err(fatal) = &metrics.borrow_and_update().running_state {
            break fatal.to_string();
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = metrics.changed() => {
                if changed.is_err() {
                    break "the Raft core is gone".to_string();
                }
            }
        }
    };
    if shutdown.is_cancelled() {
        return;
    }
    readiness.mark_stopped();
    tracing::error!(%fatal, "the Raft core stopped; this replica cannot serve");
    if let Some(failure) = failure {
        failure.fail(format!("the Raft core stopped: {fatal}"));
    }
}

/// Initializes the group with every replica of the address book, once.
async fn bootstrap(raft: &Raft, nodes: &NodeAddrs) -> Result<(), StartError> {
    let members: BTreeMap<NodeId, BasicNode> = nodes
        .iter()
        .map(|(id, url)| (id, BasicNode::new(authority(url))))
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
        Err(err) => Err(StartError::Raft(format!(
            "cannot initialize the Raft group: {err}"
        ))),
    }
}
