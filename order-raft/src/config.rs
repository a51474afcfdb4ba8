//! How a replica is run: its command line, where every flag also has an environment
//! variable, and the openraft settings derived from it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use api::cli::{BatchArgs, ClusterAuth, PeerArgs, RetentionArgs, ServeArgs};
use api::cluster::{NodeAddrs, authority};
use clap::Parser;
use openraft::SnapshotPolicy;

use crate::error::StartError;
use crate::leadership::Timings;
use crate::types::NodeId;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "order-raft",
    about = "One replica of the toy store's Raft-replicated order service"
)]
pub struct Config {
    /// This replica's id (1, 2, 3, …); must appear in --nodes.
    #[arg(long, env = "TOYSTORE_NODE_ID")]
    pub id: NodeId,

    /// --catalog and --nodes (this replica's own --id must be in --nodes).
    #[command(flatten)]
    pub peers: PeerArgs,

    /// Address to listen on. Default: the host:port of this replica's URL in --nodes.
    #[arg(long, env = "TOYSTORE_NODE_ADDR")]
    pub listen: Option<SocketAddr>,

    /// Directory of this replica's RocksDB. Default: data/node-ID.
    #[arg(long, env = "TOYSTORE_NODE_DATA")]
    pub data_dir: Option<PathBuf>,

    /// Initialize the Raft group with every replica in --nodes if this replica's log is empty.
    /// Safe on every start (an initialized group ignores it). Give it to one replica: replicas
    /// bootstrapped together campaign together, which costs a second election.
    #[arg(long, env = "TOYSTORE_BOOTSTRAP", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub bootstrap: bool,

    /// Leader heartbeat interval, in milliseconds. The three timings are chosen for fast
    /// failover on loopback without spurious elections under load (README, "Failover").
    #[arg(
        long = "heartbeat-ms",
        env = "TOYSTORE_HEARTBEAT_MS",
        default_value_t = 40
    )]
    pub heartbeat_ms: u64,

    /// Shortest election timeout, in milliseconds.
    #[arg(
        long = "election-min-ms",
        env = "TOYSTORE_ELECTION_MIN_MS",
        default_value_t = 120
    )]
    pub election_min_ms: u64,

    /// Longest election timeout, in milliseconds; also openraft's leader lease. A follower
    /// campaigns on its own after a lease plus a random election timeout without a heartbeat.
    #[arg(
        long = "election-max-ms",
        env = "TOYSTORE_ELECTION_MAX_MS",
        default_value_t = 150
    )]
    pub election_max_ms: u64,

    /// How long after a lease with no word from any leader a replica the front-end selected
    /// campaigns, in milliseconds (see `leadership.rs`). Must stay well below
    /// --election-min-ms.
    #[arg(
        long = "campaign-margin-ms",
        env = "TOYSTORE_CAMPAIGN_MARGIN_MS",
        default_value_t = 10
    )]
    pub campaign_margin_ms: u64,

    /// Exit (non-zero) when the Raft core stops with a fatal error, so that scripts and
    /// supervisors see it. Off in in-process tests, which inspect the stopped replica.
    #[arg(long, env = "TOYSTORE_EXIT_ON_RAFT_FAILURE", default_value_t = true,
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub exit_on_raft_failure: bool,

    /// Deadline of one leadership confirmation (a read-index round), in milliseconds: a
    /// leader cut off from its followers refuses reads and orders after it.
    #[arg(long = "confirm-timeout-ms", env = "TOYSTORE_CONFIRM_TIMEOUT_MS", default_value = "2000",
          value_parser = api::cli::millis)]
    pub confirm_timeout: Duration,

    /// How long a catalog reservation may stay unconfirmed before the leader settles it through
    /// the Raft log (an abandonment: released unless its order committed first), in
    /// milliseconds. A request's budget is capped at half of it.
    #[arg(long = "reservation-timeout-ms", env = "TOYSTORE_RESERVATION_TIMEOUT_MS",
          default_value = "10000", value_parser = api::cli::millis)]
    pub reservation_timeout: Duration,

    /// --dedup-retention: how long the state machine remembers a request id (and an
    /// abandoned attempt). Must be the same on every replica.
    #[command(flatten)]
    pub retention: RetentionArgs,

    /// --batch-max: most orders folded into one Raft entry.
    #[command(flatten)]
    pub batch: BatchArgs,

    /// Build a snapshot every this many log entries.
    #[arg(long, env = "TOYSTORE_SNAPSHOT_EVERY", default_value_t = 5000)]
    pub snapshot_every: u64,

    /// Log entries to keep after a snapshot (lagging followers within this catch up by log).
    #[arg(long, env = "TOYSTORE_KEEP_LOGS", default_value_t = 1000)]
    pub keep_logs: u64,

    /// --cluster-token / --insecure: what guards the internal endpoints and Raft RPCs.
    #[command(flatten)]
    pub auth: ClusterAuth,

    /// Timeouts and the connection cap of the HTTP server.
    #[command(flatten)]
    pub serve: ServeArgs,

    /// Serve `POST /faults` (tests and chaos runs only): lets a caller crash this replica at
    /// chosen points.
    #[arg(long, env = "TOYSTORE_FAULT_INJECTION", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub fault_injection: bool,

    /// With --fault-injection: abort in the middle of the next snapshot install (after the old
    /// state is deleted, before the new one is complete), to test recovery from that crash.
    #[arg(long, env = "TOYSTORE_FAULT_CRASH_MID_INSTALL", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub fault_crash_mid_install: bool,

    /// With --fault-injection: break a promise on purpose, to show that verification catches
    /// it (`cluster/verify.sh --break`): `local-read` answers order queries from this
    /// replica's own state (no read index, no forwarding), `ack-before-commit` answers orders
    /// before their Raft entry commits. Comma-separated or repeated.
    #[arg(
        long = "break",
        env = "TOYSTORE_REPLICA_BREAK",
        value_delimiter = ',',
        value_enum,
        requires = "fault_injection"
    )]
    pub breaks: Vec<crate::faults::Break>,
}

impl Config {
    /// A configuration for tests.
    pub fn for_test(
        id: NodeId,
        nodes: NodeAddrs,
        data_dir: PathBuf,
        catalog: reqwest::Url,
    ) -> Self {
        let mut config = Self::parse_from(["order-raft", "--id", "1"]);
        config.id = id;
        config.peers.nodes = nodes;
        config.data_dir = Some(data_dir);
        config.peers.catalog = catalog;
        // In-process tests run without a token unless they set one (`ClusterAuth`).
        config.auth = ClusterAuth::insecure();
        // The lowest id initializes the group; the others join when it contacts them.
        config.bootstrap = config.peers.nodes.ids().next() == Some(id);
        // Unoptimized builds of several clusters share two cores in a test run: generous
        // timeouts keep a busy scheduler from passing for a dead leader.
        config.heartbeat_ms = 100;
        config.election_min_ms = 600;
        config.election_max_ms = 1200;
        config.campaign_margin_ms = 50;
        config.reservation_timeout = Duration::from_secs(10);
        config.exit_on_raft_failure = false;
        config
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("data/node-{}", self.id)))
    }

    /// The timings leadership moves with (see `leadership.rs`).
    pub(crate) fn leadership_timings(&self) -> Timings {
        Timings {
            lease: Duration::from_millis(self.election_max_ms),
            election_min: Duration::from_millis(self.election_min_ms),
            margin: Duration::from_millis(self.campaign_margin_ms),
        }
    }

    /// Where to listen: `--listen`, else the IP and port of this replica's own URL.
    pub(crate) fn listen_addr(&self) -> Result<SocketAddr, StartError> {
        if let Some(addr) = self.listen {
            return Ok(addr);
        }
        let url = self.peers.nodes.get(self.id).ok_or_else(|| {
            StartError::Config(format!(
                "node {} is not in --nodes ({})",
                self.id, self.peers.nodes
            ))
        })?;
        authority(url).parse().map_err(|_| {
            StartError::Config(format!(
                "cannot listen on {url} (a host name, not an IP address): give --listen IP:PORT"
            ))
        })
    }

    pub(crate) fn raft_config(&self) -> Result<openraft::Config, StartError> {
        let config = openraft::Config {
            cluster_name: "toystore-orders".into(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_min_ms,
            election_timeout_max: self.election_max_ms,
            install_snapshot_timeout: 5_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.keep_logs,
            replication_lag_threshold: self.snapshot_every.saturating_mul(2),
            // A replica whose election timer fires first asks the others whether they would
            // vote for it, without raising its term; they say no while they still hear a
            // leader. So a replica that was cut off (a partition, a pause) or restarted rejoins
            // without deposing the leader with a term it raised alone. Explicit, as openraft's
            // default (`None`) is off and may change.
            enable_pre_vote: Some(true),
            ..Default::default()
        };
        // The catalog lets a reservation be released or reused only while it is younger than
        // half the retention (README, "Retention"); the sweeper must find it pending before
        // then, with time to spare for a catalog that was briefly unreachable.
        if self.retention.dedup_retention < 4 * self.reservation_timeout {
            return Err(StartError::Config(format!(
                "--dedup-retention ({} s) must be at least 4 × --reservation-timeout-ms ({} ms)",
                self.retention.dedup_retention.as_secs(),
                self.reservation_timeout.as_millis()
            )));
        }
        if self.campaign_margin_ms * 2 >= self.election_min_ms {
            return Err(StartError::Config(format!(
                "--campaign-margin-ms {} must be below half of --election-min-ms {}",
                self.campaign_margin_ms, self.election_min_ms
            )));
        }
        config
            .validate()
            .map_err(|err| StartError::Config(format!("bad Raft settings: {err}")))
    }
}
