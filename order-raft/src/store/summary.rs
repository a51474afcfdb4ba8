//! The state machine's bookkeeping record, [`Summary`]: what was applied last, the membership,
//! the counters the rules keep, and how far this replica has garbage-collected. It is written
//! in the same batch as the orders it describes (by `apply` and by a snapshot install) and read
//! by the reader and at open; it sits below all of them so none imports another for it.

use serde::{Deserialize, Serialize};

use super::rules::Counters;
use crate::types::{LogId, StoredMembership};

/// The key of the [`Summary`] in the state machine's metadata column family.
pub(super) const KEY_SUMMARY: &[u8] = b"summary";

/// The state machine's bookkeeping, persisted atomically with the orders it describes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    /// Next number, digest, clock, abandonment sequence: functions of the log alone.
    pub counters: Counters,
    /// How far this replica has garbage-collected request ids (orders numbered below this have
    /// no index entry) and abandonment records (sequence numbers below this). Differs between
    /// replicas; never changes an answer.
    pub requests_forgotten_below: u64,
    pub abandons_forgotten_below: u64,
}
