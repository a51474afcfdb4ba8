//! The Raft type configuration and the commands and results that travel through the log.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The order service's Raft types: a log entry carries an [`OrderBatch`], applying it yields
    /// a [`BatchOutcome`].
    pub TypeConfig:
        D = OrderBatch,
        R = BatchOutcome,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
pub type StorageError = openraft::StorageError<NodeId>;

/// One order as it is proposed to the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOrder {
    pub request_id: String,
    pub name: String,
    pub quantity: u32,
}

/// A log entry's payload: orders in the order they are to be numbered. The leader's
/// [`crate::batcher::OrderBatcher`] folds concurrent orders into one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderBatch {
    pub orders: Vec<NewOrder>,
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
}

impl OrderOutcome {
    pub fn number(self) -> u64 {
        match self {
            Self::Placed(n) | Self::Duplicate(n) | Self::Conflict(n) => n,
        }
    }
}

/// The result of applying one entry: one outcome per order of its batch (none for blank and
/// membership entries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOutcome {
    pub outcomes: Vec<OrderOutcome>,
}

/// An order as the state machine stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredOrder {
    pub number: u64,
    pub request_id: String,
    pub name: String,
    pub quantity: u32,
}
