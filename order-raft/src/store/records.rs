//! The records the state machine keeps on disk and in snapshot files: orders and
//! abandonments. Plain data, shared by storage, snapshots and the rules; they depend on
//! nothing else in the crate.

use serde::{Deserialize, Serialize};

/// An order as the state machine stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredOrder {
    pub number: u64,
    pub request_id: String,
    pub attempt: u32,
    pub name: String,
    pub quantity: u32,
    /// The state machine's clock when it was placed.
    pub placed_ms: u64,
}

/// A request id whose attempts up to `through` were abandoned, remembered (in order of
/// `seq`) for the retention window so that their reservations can never be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbandonRecord {
    pub seq: u64,
    pub request_id: String,
    pub through: u32,
    pub stamp_ms: u64,
}
