//! One `apply` call's storage work: look each request id up, let [`super::rules`] decide, and
//! put what it decided into one RocksDB `WriteBatch` with the new [`Summary`]; then forget, in a
//! bounded step, what the retention no longer covers.
//!
//! Forgetting here is garbage collection only. Each replica does it at the end of its own
//! `apply` calls, so two replicas may hold different leftovers for a while; the rules look past
//! anything older than the retention ([`Known::within`]), so no answer depends on it.

use std::collections::HashMap;

use rocksdb::WriteBatch;

use super::reader::OrderReader;
use super::records::{AbandonRecord, StoredOrder};
use super::rules::{Known, Write};
use super::summary::{KEY_SUMMARY, Summary};
use super::{
    CF_ABANDON_LOG, CF_ABANDONED, CF_ORDERS, CF_REQUESTS, CF_SM_META, StoreError, cf, decode,
    encode, index_from_key, index_key,
};
use crate::types::{Decided, Entry, NewOrder, OrderOutcome, StoredMembership, Verdict};
use api::catalog::ReservationId;
use openraft::EntryPayload;

/// Most request ids (and, separately, abandonments) forgotten per `apply` call: retention
/// never makes one call slow. At one entry per call and 256 orders per entry this still
/// forgets four times faster than the store can place orders.
const FORGET_STEP: u64 = 1024;

/// The state of one `apply` call: what it changed that is not in RocksDB yet.
pub(super) struct Applying<'a> {
    reader: &'a OrderReader,
    pub summary: Summary,
    batch: WriteBatch,
    /// Orders placed in this call, by request id (the latest per id) and by number.
    placed: HashMap<String, StoredOrder>,
    placed_numbers: HashMap<u64, String>,
    /// Abandonment records written in this call, by request id.
    abandoned: HashMap<String, AbandonRecord>,
}

impl<'a> Applying<'a> {
    pub fn new(reader: &'a OrderReader) -> Self {
        Self {
            reader,
            summary: reader.summary(),
            batch: WriteBatch::default(),
            placed: HashMap::new(),
            placed_numbers: HashMap::new(),
            abandoned: HashMap::new(),
        }
    }

    /// Applies one log entry.
    pub fn entry(&mut self, entry: &Entry) -> Result<Decided, StoreError> {
        self.summary.last_applied = Some(entry.log_id);
        let mut decided = Decided::default();
        match &entry.payload {
            EntryPayload::Blank => {}
            EntryPayload::Normal(proposal) => {
                self.summary.counters.tick(proposal.stamp_ms);
                for order in &proposal.orders {
                    decided.orders.push(self.order(order)?);
                }
                for abandon in &proposal.abandons {
                    decided.abandons.push(self.abandon(abandon)?);
                }
            }
            EntryPayload::Membership(membership) => {
                self.summary.membership =
                    StoredMembership::new(Some(entry.log_id), membership.clone());
            }
        }
        Ok(decided)
    }

    /// Everything stored for a request id, this call's writes included.
    fn stored(&self, request_id: &str) -> Result<Known, StoreError> {
        let placed = match self.placed.get(request_id) {
            Some(order) => Some(order.clone()),
            None => self.reader.stored_order(request_id)?,
        };
        let abandoned = match self.abandoned.get(request_id) {
            Some(record) => Some(record.clone()),
            None => self.reader.stored_abandonment(request_id)?,
        };
        Ok(Known { placed, abandoned })
    }

    fn order(&mut self, order: &NewOrder) -> Result<OrderOutcome, StoreError> {
        let known = self.stored(&order.request_id)?;
        let rules = self.reader.rules;
        let (outcome, write) = rules.order(&mut self.summary.counters, known, order);
        if let Some(write) = write {
            self.write(write)?;
        }
        Ok(outcome)
    }

    fn abandon(&mut self, id: &ReservationId) -> Result<Verdict, StoreError> {
        let known = self.stored(&id.request_id)?;
        let rules = self.reader.rules;
        let (verdict, write) = rules.abandon(&mut self.summary.counters, known, id);
        if let Some(write) = write {
            self.write(write)?;
        }
        Ok(verdict)
    }

    fn write(&mut self, write: Write) -> Result<(), StoreError> {
        let db = &*self.reader.db;
        match write {
            Write::Order(order) => {
                put_order(db, &mut self.batch, &order, true)?;
                self.placed_numbers
                    .insert(order.number, order.request_id.clone());
                self.placed.insert(order.request_id.clone(), order);
            }
            Write::Abandon { record, replaces } => {
                if let Some(old) = replaces {
                    self.batch.delete_cf(cf(db, CF_ABANDON_LOG), index_key(old));
                }
                put_abandon(db, &mut self.batch, &record)?;
                self.abandoned.insert(record.request_id.clone(), record);
            }
        }
        Ok(())
    }

    /// Forgets, a bounded number at a time, the request ids and abandonments older than the
    /// retention. An index entry goes only if it still points at the order being forgotten:
    /// a request id reused after its retention points at its newer order.
    fn forget(&mut self) -> Result<(), StoreError> {
        let db = &*self.reader.db;
        let cutoff = self.reader.rules.cutoff(self.summary.counters.clock_ms);
        for _ in 0..FORGET_STEP {
            let number = self.summary.requests_forgotten_below;
            if number >= self.summary.counters.next_number {
                break;
            }
            let order = match self.placed_numbers.get(&number) {
                Some(request_id) => self.placed.get(request_id).cloned(),
                None => self.reader.order(number)?,
            };
            let Some(order) = order else {
                return Err(StoreError::Corrupt(format!("order {number} is missing")));
            };
            if order.placed_ms >= cutoff {
                break;
            }
            let indexed = match self.placed.get(&order.request_id) {
                Some(latest) => Some(latest.number),
                None => self.indexed_number(&order.request_id)?,
            };
            if indexed == Some(number) {
                self.batch
                    .delete_cf(cf(db, CF_REQUESTS), order.request_id.as_bytes());
            }
            self.summary.requests_forgotten_below += 1;
        }
        for _ in 0..FORGET_STEP {
            let seq = self.summary.abandons_forgotten_below;
            if seq >= self.summary.counters.abandon_seq {
                break;
            }
            let record: Option<AbandonRecord> =
                match self.abandoned.values().find(|record| record.seq == seq) {
                    // Written in this very call: too young to forget.
                    Some(_) => break,
                    None => match db.get_pinned_cf(cf(db, CF_ABANDON_LOG), index_key(seq))? {
                        Some(bytes) => Some(decode(&bytes).map_err(|e| {
                            StoreError::Corrupt(format!("abandonment record {seq}: {e}"))
                        })?),
                        // Replaced by a later abandonment of the same request id.
                        None => None,
                    },
                };
            if let Some(record) = record {
                if record.stamp_ms >= cutoff {
                    break;
                }
                self.batch.delete_cf(cf(db, CF_ABANDON_LOG), index_key(seq));
                let current = match self.abandoned.get(&record.request_id) {
                    Some(latest) => Some(latest.seq),
                    None => self
                        .reader
                        .stored_abandonment(&record.request_id)?
                        .map(|r| r.seq),
                };
                if current == Some(seq) {
                    self.batch
                        .delete_cf(cf(db, CF_ABANDONED), record.request_id.as_bytes());
                }
            }
            self.summary.abandons_forgotten_below += 1;
        }
        Ok(())
    }

    fn indexed_number(&self, request_id: &str) -> Result<Option<u64>, StoreError> {
        let db = &*self.reader.db;
        match db.get_pinned_cf(cf(db, CF_REQUESTS), request_id.as_bytes())? {
            Some(bytes) => index_from_key(&bytes).map(Some).ok_or_else(|| {
                StoreError::Corrupt(format!("the request index entry of {request_id:?}"))
            }),
            None => Ok(None),
        }
    }

    /// Forgets what the retention no longer covers and writes everything, the summary
    /// included, in one batch. Returns the new summary.
    pub fn finish(mut self) -> Result<Summary, StoreError> {
        self.forget()?;
        let db = &*self.reader.db;
        let Applying {
            summary, mut batch, ..
        } = self;
        batch.put_cf(cf(db, CF_SM_META), KEY_SUMMARY, encode(&summary)?);
        // Not synced: every applied entry is in the (synced) Raft log, and RocksDB recovers a
        // prefix of the shared WAL, so after a crash the state machine is at some earlier
        // applied id and openraft re-applies the rest from the log. The log store never purges
        // past what was applied (and so written to the WAL) here.
        db.write(batch)?;
        Ok(summary)
    }
}

pub(super) fn put_order(
    db: &rocksdb::DB,
    batch: &mut WriteBatch,
    order: &StoredOrder,
    with_request: bool,
) -> Result<(), StoreError> {
    batch.put_cf(cf(db, CF_ORDERS), index_key(order.number), encode(order)?);
    if with_request {
        batch.put_cf(
            cf(db, CF_REQUESTS),
            order.request_id.as_bytes(),
            index_key(order.number),
        );
    }
    Ok(())
}

pub(super) fn put_abandon(
    db: &rocksdb::DB,
    batch: &mut WriteBatch,
    record: &AbandonRecord,
) -> Result<(), StoreError> {
    batch.put_cf(
        cf(db, CF_ABANDON_LOG),
        index_key(record.seq),
        encode(record)?,
    );
    batch.put_cf(
        cf(db, CF_ABANDONED),
        record.request_id.as_bytes(),
        encode(&(record.seq, record.through))?,
    );
    Ok(())
}
