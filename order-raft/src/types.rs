//! The Raft type configuration and the commands and results that travel through the log.

use api::catalog::ReservationId;
use openraft::type_config::alias::{
    CommittedLeaderIdOf, EntryOf, LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf, VoteOf,
};
use serde::{Deserialize, Serialize};

use crate::store::RocksStateMachine;
use crate::store::snapshot_file::SnapshotFile;

pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The order service's Raft types: a log entry carries a [`Proposal`], applying it yields
    /// a [`Decided`]. Terms, leader ids and votes are openraft's defaults (`u64` terms, the
    /// "advanced" leader id of term and node, as in 0.9). Snapshots are files
    /// ([`SnapshotFile`]): since 0.10 that type belongs to the state machine and the network,
    /// not to this configuration.
    pub TypeConfig:
        D = Proposal,
        R = Decided,
        NodeId = NodeId,
        Node = openraft::BasicNode,
);

pub type Raft = openraft::Raft<TypeConfig, RocksStateMachine>;
pub type Entry = EntryOf<TypeConfig>;
pub type LogId = LogIdOf<TypeConfig>;
pub type CommittedLeaderId = CommittedLeaderIdOf<TypeConfig>;
pub type Vote = VoteOf<TypeConfig>;
pub type StoredMembership = StoredMembershipOf<TypeConfig>;
pub type SnapshotMeta = SnapshotMetaOf<TypeConfig>;
pub type Snapshot = SnapshotOf<TypeConfig, SnapshotFile>;
/// What openraft's storage suite reports; the storage traits themselves return `io::Error`
/// since 0.10.
pub type StorageError = openraft::StorageError<TypeConfig>;

/// One order as it is proposed to the log: what to number, and the reservation that holds
/// its stock at the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOrder {
    pub request_id: String,
    /// Which attempt at this request id the reservation serves (see [`ReservationId`]).
    pub attempt: u32,
    pub name: String,
    pub quantity: u32,
}

impl NewOrder {
    pub fn reservation(&self) -> ReservationId {
        ReservationId {
            request_id: self.request_id.clone(),
            attempt: self.attempt,
        }
    }
}

/// A log entry's payload. The leader's [`crate::batcher::OrderBatcher`] folds concurrent
/// orders into one entry; the [`crate::settlement::Sweeper`] proposes abandonments of reservations that
/// were never confirmed. `stamp_ms` is the leader's wall clock when it proposed: the state
/// machine's clock for retention, the same on every replica because it is in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub stamp_ms: u64,
    pub orders: Vec<NewOrder>,
    pub abandons: Vec<ReservationId>,
}

impl std::fmt::Display for Proposal {
    /// openraft 0.10 logs entries' payloads with `Display`: a summary, not the orders.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "proposal at {} ms: {} orders, {} abandons",
            self.stamp_ms,
            self.orders.len(),
            self.abandons.len()
        )
    }
}

/// What applying one order did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderOutcome {
    /// A new order got this number.
    Placed(u64),
    /// The request id already had this order; nothing changed.
    Duplicate(u64),
    /// The request id already had order `.0`, for a different toy or quantity; nothing changed.
    Conflict(u64),
    /// The log abandoned this order's reservation first: no order, and the catalog releases the
    /// stock. A retry with the same request id tries again as its next attempt.
    Abandoned,
}

/// What applying one abandonment decided for its reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// The reservation's order had committed first: it keeps the stock.
    Confirm,
    /// No order holds the reservation, and none ever will: the stock goes back.
    Release,
}

/// The result of applying one entry (empty for blank and membership entries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decided {
    pub orders: Vec<OrderOutcome>,
    pub abandons: Vec<Verdict>,
}
