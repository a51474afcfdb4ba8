//! The bodies of `GET /status` on a replica and on the front-end: what `cluster/status.sh`,
//! the benchmarks and the tests read to see the cluster at a glance.

use serde::{Deserialize, Serialize};

/// `GET /status` on an order replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub id: u64,
    /// `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    pub role: String,
    pub term: u64,
    /// The Raft leader this node currently knows of.
    pub leader: Option<u64>,
    /// `ok` when it can serve orders now, else why not (`no leader`, `no quorum`,
    /// `raft stopped`): what `GET /health` answers.
    pub health: String,
    pub last_log_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// The log is purged up to this index (those entries live on in a snapshot): a replica
    /// further behind catches up from a snapshot.
    pub purged_index: Option<u64>,
    /// The replica the front-end selected (`POST /selection`), if any told this node.
    pub selected_replica: Option<u64>,
    /// Number of orders in the state machine.
    pub orders: u64,
    /// SHA-256 chain over all orders in number order, hex.
    pub digest: String,
    /// Log entries this node received from a leader since it started.
    pub entries_received: u64,
    /// Snapshots this node installed since it started.
    pub snapshots_installed: u64,
}

/// `GET /status` on the front-end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrontendStatus {
    /// The order replica orders and order queries go to.
    pub selected_replica: Option<u64>,
    pub reselections: u64,
    pub cache: CacheStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheStatus {
    pub capacity: usize,
    pub entries: usize,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub invalidations: u64,
    /// Whether the front-end currently holds a cache lease from the catalog.
    pub lease_valid: bool,
}
