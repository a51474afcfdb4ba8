//! `OrderReader`: read access to the orders for request handlers (order lookups, the leader's
//! dedup check, `/status`). It reads RocksDB directly and never waits for the Raft
//! state-machine task.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use rocksdb::{DB, Direction, IteratorMode};

use super::records::{AbandonRecord, StoredOrder};
use super::rules::{Known, Rules};
use super::summary::Summary;
use super::{
    CF_ABANDON_LOG, CF_ABANDONED, CF_ORDERS, CF_REQUESTS, StoreError, cf, decode, index_key,
};

/// What the state machine remembers of a request id now (by its clock and retention).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestState {
    /// Its order, if one was placed and is still remembered.
    pub placed: Option<StoredOrder>,
    /// Its attempts up to this one were abandoned.
    pub abandoned_through: Option<u32>,
}

impl RequestState {
    /// The attempt a new try at this request id reserves as.
    pub fn next_attempt(&self) -> u32 {
        self.abandoned_through.map_or(0, |a| a.saturating_add(1))
    }
}

/// Read access to the orders, shared by request handlers.
#[derive(Clone)]
pub struct OrderReader {
    pub(super) db: Arc<DB>,
    pub(super) summary: Arc<RwLock<Summary>>,
    pub(super) rules: Rules,
    pub(super) snapshots_installed: Arc<AtomicU64>,
}

impl OrderReader {
    pub fn order(&self, number: u64) -> Result<Option<StoredOrder>, StoreError> {
        match self
            .db
            .get_pinned_cf(cf(&self.db, CF_ORDERS), index_key(number))?
        {
            Some(bytes) => decode(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("order {number}: {e}"))),
            None => Ok(None),
        }
    }

    /// Orders `from..from + limit` (fewer at the end), in number order.
    pub fn orders(&self, from: u64, limit: usize) -> Result<Vec<StoredOrder>, StoreError> {
        let start = index_key(from);
        let mut found = Vec::new();
        for item in self.db.iterator_cf(
            cf(&self.db, CF_ORDERS),
            IteratorMode::From(&start, Direction::Forward),
        ) {
            if found.len() >= limit {
                break;
            }
            let (_, value) = item?;
            found.push(decode(&value).map_err(|e| StoreError::Corrupt(format!("an order: {e}")))?);
        }
        Ok(found)
    }

    /// The latest order stored with this request id, remembered or not (storage forgets in
    /// steps; see [`super::rules`]).
    pub(super) fn stored_order(&self, request_id: &str) -> Result<Option<StoredOrder>, StoreError> {
        match self
            .db
            .get_pinned_cf(cf(&self.db, CF_REQUESTS), request_id.as_bytes())?
        {
            Some(bytes) => match super::index_from_key(&bytes) {
                Some(number) => self.order(number),
                None => Err(StoreError::Corrupt(format!(
                    "the request index entry of {request_id:?}"
                ))),
            },
            None => Ok(None),
        }
    }

    /// The abandonment record stored for this request id, remembered or not.
    pub(super) fn stored_abandonment(
        &self,
        request_id: &str,
    ) -> Result<Option<AbandonRecord>, StoreError> {
        let Some(bytes) = self
            .db
            .get_pinned_cf(cf(&self.db, CF_ABANDONED), request_id.as_bytes())?
        else {
            return Ok(None);
        };
        let (seq, _): (u64, u32) = decode(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("abandonment of {request_id:?}: {e}")))?;
        match self
            .db
            .get_pinned_cf(cf(&self.db, CF_ABANDON_LOG), index_key(seq))?
        {
            Some(bytes) => decode(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("abandonment record {seq}: {e}"))),
            None => Err(StoreError::Corrupt(format!(
                "abandonment record {seq} of {request_id:?} is missing"
            ))),
        }
    }

    /// Everything storage holds for a request id, remembered or not.
    pub(super) fn stored(&self, request_id: &str) -> Result<Known, StoreError> {
        Ok(Known {
            placed: self.stored_order(request_id)?,
            abandoned: self.stored_abandonment(request_id)?,
        })
    }

    /// What the state machine remembers of a request id at its current clock: its order and
    /// its abandoned attempts.
    pub fn request(&self, request_id: &str) -> Result<RequestState, StoreError> {
        let cutoff = self.rules.cutoff(self.summary.read().counters.clock_ms);
        let known = self.stored(request_id)?.within(cutoff);
        Ok(RequestState {
            abandoned_through: known.abandoned.map(|record| record.through),
            placed: known.placed,
        })
    }

    pub fn summary(&self) -> Summary {
        self.summary.read().clone()
    }

    pub fn snapshots_installed(&self) -> u64 {
        self.snapshots_installed.load(Ordering::Relaxed)
    }
}
