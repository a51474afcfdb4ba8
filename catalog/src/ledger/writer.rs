//! The writer task: applies a batch of commands to a working copy of the stock, commits their
//! effects in one RocksDB batch, pushes the invalidations, and publishes the new state.

use std::collections::HashMap;
use std::sync::Arc;

use api::cache_lease::StaleToy;
use api::catalog::{
    Decision, Reservation, ReservationId, ReserveOutcome, SettleOutcome, Settlement,
    VersionedProduct,
};
use parking_lot::RwLock;

use super::retention::{Retention, SettleStep, answer_again, settle_step};
use super::{Answer, Clock, Command};
use crate::cache_lease::CacheLeases;
use crate::error::CatalogError;
use crate::faults::Faults;
use crate::metrics::CatalogMetrics;
use crate::store::{
    Changes, ReservationRecord, ReservationState, StockStore, ToyState, Toys, next_version,
};

pub(super) fn versioned(name: &str, state: &ToyState) -> VersionedProduct {
    VersionedProduct {
        name: name.to_string(),
        price: state.price,
        quantity: state.quantity,
        version: state.version,
    }
}

pub(super) struct Writer {
    pub(super) store: Arc<StockStore>,
    pub(super) toys: Arc<RwLock<Toys>>,
    pub(super) leases: Arc<CacheLeases>,
    pub(super) metrics: CatalogMetrics,
    pub(super) retention: Retention,
    pub(super) clock: Clock,
    /// The lowest version this run may give a change: see [`next_version`].
    pub(super) floor: u64,
    pub(super) faults: Faults,
}

/// The result of applying one batch to the working copy.
#[derive(Default)]
struct Applied {
    changes: Changes,
    answers: Vec<Answer>,
    /// Units confirmed and released in this batch (for metrics).
    confirmed_units: u64,
    released_units: u64,
    /// Whether the batch answers a reservation: then it is written with fsync.
    reserves: bool,
}

impl Writer {
    /// Applies one batch, commits it, invalidates caches, makes it visible, and returns the
    /// answers: the queue hands them to the callers only now.
    ///
    /// The invalidation push runs while the commit is written: a front-end that drops an entry
    /// early (or for a change that then fails to commit) only misses its cache once, and it
    /// refuses fills older than the pushed version either way. Readers see the batch only after
    /// the commit.
    pub(super) async fn commit(self: Arc<Self>, commands: Vec<Command>) -> Vec<Answer> {
        // In place: a few map updates and point reads (memtable or block cache); only the
        // commit below may wait on the disk.
        let mut applied = self.apply(commands);
        // Fault injection (`--break skip-invalidation`): no push, the caches keep the old stock.
        let stale = self.faults.invalidations(self.stale_toys(&applied));
        let writer = self.clone();
        let changes = std::mem::take(&mut applied.changes);
        let sync = applied.reserves;
        let written = tokio::task::spawn_blocking(move || {
            let written = writer.store.commit(&changes, sync);
            (changes, written)
        });
        // While the push and the commit run, a front-end that registers is told the versions
        // in flight (its push will not come), until the batch is visible (`landed` below).
        let (written, ()) = tokio::join!(written, self.leases.push(&stale));
        let failure = match written {
            Ok((changes, Ok(()))) => {
                applied.changes = changes;
                None
            }
            Ok((_, Err(err))) => Some(err.to_string()),
            Err(err) => Some(err.to_string()),
        };
        match failure {
            None => {
                self.count(&applied);
                self.publish(&applied);
                self.leases.landed();
            }
            Some(message) => {
                tracing::error!(%message, "cannot commit stock changes");
                self.leases.landed();
                // Nothing of this batch is durable: fail every caller and forget the changes.
                let failed = || CatalogError::Storage(message.clone());
                for answer in &mut applied.answers {
                    *answer = match answer {
                        Answer::Reserve(_) => Answer::Reserve(Err(failed())),
                        Answer::Settle(_) => Answer::Settle(Err(failed())),
                        Answer::Restock(_) => Answer::Restock(Err(failed())),
                    };
                }
            }
        }
        applied.answers
    }

    /// Applies commands to a working copy: what to write, and the answers once it is written.
    fn apply(&self, commands: Vec<Command>) -> Applied {
        let mut applied = Applied::default();
        let mut working: Toys = self.toys.read().clone();
        let now = (self.clock)();
        // Records written earlier in this batch: a second command for the same id must see the
        // first one's effect, which is not on disk yet.
        let mut recorded: HashMap<ReservationId, ReservationRecord> = HashMap::new();
        for command in commands {
            let answer = match command {
                Command::Reserve(reservation) => {
                    applied.reserves = true;
                    Answer::Reserve(self.apply_reserve(
                        &mut working,
                        &mut recorded,
                        &mut applied,
                        reservation,
                        now,
                    ))
                }
                Command::Settle(settlement) => Answer::Settle(self.apply_settle(
                    &mut working,
                    &mut recorded,
                    &mut applied,
                    settlement,
                    now,
                )),
                Command::Restock => {
                    let level = self.store.initial_stock();
                    let mut names = Vec::new();
                    for (name, state) in working.iter_mut().filter(|(_, s)| s.quantity == 0) {
                        state.quantity = level;
                        state.restocked += u64::from(level);
                        state.version = next_version(state.version, self.floor);
                        applied.changes.toys.insert(name.clone(), state.clone());
                        names.push(name.clone());
                    }
                    Answer::Restock(Ok(names))
                }
            };
            applied.answers.push(answer);
        }
        applied.changes.records = recorded.into_iter().collect();
        applied
    }

    fn find(
        &self,
        recorded: &HashMap<ReservationId, ReservationRecord>,
        id: &ReservationId,
    ) -> Result<Option<ReservationRecord>, CatalogError> {
        match recorded.get(id) {
            Some(record) => Ok(Some(record.clone())),
            None => self.store.find(id),
        }
    }

    fn apply_reserve(
        &self,
        working: &mut Toys,
        recorded: &mut HashMap<ReservationId, ReservationRecord>,
        applied: &mut Applied,
        reservation: Reservation,
        now: u64,
    ) -> Result<ReserveOutcome, CatalogError> {
        if let Some(record) = self.find(recorded, &reservation.id)? {
            let answer = answer_again(&record, &reservation, now, self.retention)?;
            if answer != ReserveOutcome::Released {
                self.metrics.duplicate_reservations.inc();
            }
            return Ok(answer);
        }
        let Some(state) = working.get_mut(&reservation.name) else {
            // Unknown toys are not recorded: the answer cannot change, so a retry gets it too.
            return Ok(ReserveOutcome::UnknownProduct);
        };
        let (outcome, record_state) = if state.quantity >= reservation.quantity {
            state.quantity -= reservation.quantity;
            state.pending += u64::from(reservation.quantity);
            state.version = next_version(state.version, self.floor);
            applied
                .changes
                .toys
                .insert(reservation.name.clone(), state.clone());
            applied
                .changes
                .pending_added
                .push((now, reservation.id.clone()));
            let outcome = ReserveOutcome::Reserved {
                remaining: state.quantity,
                version: state.version,
            };
            (outcome, ReservationState::Pending)
        } else {
            // Finished at once, and forgotten after the refusal window (module doc).
            applied.changes.settled_added.push((
                self.retention.refusal_finished_at(now),
                reservation.id.clone(),
            ));
            let outcome = ReserveOutcome::OutOfStock {
                available: state.quantity,
            };
            (outcome, ReservationState::Refused)
        };
        let record = ReservationRecord {
            name: reservation.name,
            quantity: reservation.quantity,
            outcome: outcome.clone(),
            state: record_state,
            made_ms: now,
        };
        recorded.insert(reservation.id, record);
        Ok(outcome)
    }

    fn apply_settle(
        &self,
        working: &mut Toys,
        recorded: &mut HashMap<ReservationId, ReservationRecord>,
        applied: &mut Applied,
        settlement: Settlement,
        now: u64,
    ) -> Result<SettleOutcome, CatalogError> {
        let Settlement { id, decision } = settlement;
        let Some(mut record) = self.find(recorded, &id)? else {
            return Ok(match decision {
                // Nothing to confirm: the reservation was never made (or long forgotten).
                Decision::Confirm => SettleOutcome::Unknown,
                // Released before it was made: a reservation that arrives late under this id
                // must not take stock, so the release is remembered.
                Decision::Release => {
                    let record = ReservationRecord {
                        name: String::new(),
                        quantity: 0,
                        outcome: ReserveOutcome::Released,
                        state: ReservationState::Released,
                        made_ms: now,
                    };
                    applied.changes.settled_added.push((now, id.clone()));
                    recorded.insert(id, record);
                    SettleOutcome::Released
                }
            });
        };
        match settle_step(record.state, record.made_ms, decision, now, self.retention) {
            SettleStep::Apply(settled_as) => {
                if let Some(state) = working.get_mut(&record.name) {
                    let units = u64::from(record.quantity);
                    state.pending = state.pending.saturating_sub(units);
                    if settled_as == ReservationState::Released {
                        state.quantity = state.quantity.saturating_add(record.quantity);
                        state.version = next_version(state.version, self.floor);
                        applied.released_units += units;
                    } else {
                        applied.confirmed_units += units;
                        // Fault injection (`--break release-confirmed`): the units come back.
                        self.faults
                            .release_confirmed(state, record.quantity, self.floor);
                    }
                    applied
                        .changes
                        .toys
                        .insert(record.name.clone(), state.clone());
                }
                applied
                    .changes
                    .pending_removed
                    .push((record.made_ms, id.clone()));
                applied.changes.settled_added.push((now, id.clone()));
                record.state = settled_as;
                let outcome = settled(record.state);
                recorded.insert(id, record);
                Ok(outcome)
            }
            SettleStep::RefuseRelease => {
                // Past the horizon the replicas may have forgotten whether an order used this
                // reservation: giving its units back could sell them twice. They stay held.
                self.metrics.releases_refused.inc();
                tracing::error!(
                    %id,
                    name = %record.name,
                    quantity = record.quantity,
                    age_ms = now.saturating_sub(record.made_ms),
                    "refusing to release a reservation older than the decision horizon; its units stay held"
                );
                Ok(SettleOutcome::Unknown)
            }
            SettleStep::Contradiction => {
                // The log decides once per reservation; a contradicting settlement is a bug
                // somewhere. The first settlement stands.
                tracing::error!(%id, ?decision, state = ?record.state, "a settlement contradicts an earlier one");
                Ok(settled(record.state))
            }
            SettleStep::AsBefore => Ok(settled(record.state)),
        }
    }

    /// Counts what a committed batch did.
    fn count(&self, applied: &Applied) {
        if !applied.changes.is_empty() {
            self.metrics.commits.inc();
        }
        for (_, record) in &applied.changes.records {
            match (record.state, &record.outcome) {
                (ReservationState::Pending, ReserveOutcome::Reserved { .. }) => {
                    self.metrics.reservations.inc();
                }
                (ReservationState::Refused, _) => {
                    self.metrics.out_of_stock.inc();
                }
                _ => {}
            }
        }
        self.metrics.units_sold.inc_by(applied.confirmed_units);
        self.metrics.units_released.inc_by(applied.released_units);
        for answer in &applied.answers {
            if let Answer::Restock(Ok(names)) = answer {
                self.metrics.restocked_toys.inc_by(names.len() as u64);
                if !names.is_empty() {
                    tracing::info!(toys = ?names, "restocked");
                }
            }
        }
    }

    /// The toys whose stock a batch changes, with their new versions: what to invalidate.
    fn stale_toys(&self, applied: &Applied) -> Vec<StaleToy> {
        let toys = self.toys.read();
        applied
            .changes
            .toys
            .iter()
            .filter(|(name, state)| {
                toys.get(*name)
                    .is_none_or(|old| old.version != state.version)
            })
            .map(|(name, state)| StaleToy {
                name: name.clone(),
                version: state.version,
            })
            .collect()
    }

    /// Makes a committed batch visible to readers.
    fn publish(&self, applied: &Applied) {
        if applied.changes.toys.is_empty() {
            return;
        }
        let mut toys = self.toys.write();
        for (name, state) in &applied.changes.toys {
            toys.insert(name.clone(), state.clone());
        }
    }
}

fn settled(state: ReservationState) -> SettleOutcome {
    match state {
        ReservationState::Confirmed => SettleOutcome::Confirmed,
        ReservationState::Released => SettleOutcome::Released,
        ReservationState::Pending | ReservationState::Refused => SettleOutcome::Unknown,
    }
}
