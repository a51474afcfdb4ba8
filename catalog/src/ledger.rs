//! The single writer of stock: reservations, settlements and restocks, group-committed.
//!
//! Every change goes through one task (a [`BatchQueue`]), so reservations of the same toy are
//! serialized and can never oversell. The task takes every command waiting in its queue,
//! applies them in arrival order to a working copy, writes all their effects in one synced
//! RocksDB batch (one fsync for many reservations), publishes the new state to readers, pushes
//! the invalidations, and only then answers each caller. A caller that has its reservation
//! (or release) acknowledged can therefore never read the earlier quantity from any front-end
//! cache.
//!
//! Accounts: for every toy, `initial + restocked == quantity + pending + sold`, where `pending`
//! is held by reservations not yet settled and `sold` by confirmed ones. A reservation takes
//! units from `quantity` into `pending`; a confirmation moves them to `sold`; a release moves
//! them back to `quantity`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use api::batch::BatchQueue;
use api::cache_lease::StaleToy;
use api::catalog::{
    Decision, PendingReservation, Reservation, ReservationId, ReserveOutcome, SettleOutcome,
    Settlement, ToyStock, VersionedProduct,
};
use api::order::valid_request_id;
use parking_lot::RwLock;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cache_lease::CacheLeases;
use crate::error::CatalogError;
use crate::metrics::CatalogMetrics;
use crate::store::{Changes, ReservationRecord, ReservationState, StockStore, ToyState, Toys};

/// Most commands folded into one commit.
const MAX_BATCH: usize = 512;

/// A change to the stock.
enum Command {
    Reserve(Reservation),
    Settle(Settlement),
    Restock,
}

/// What a command did, in the same order as the commands.
enum Answer {
    Reserve(Result<ReserveOutcome, CatalogError>),
    Settle(Result<SettleOutcome, CatalogError>),
    Restock(Result<Vec<String>, CatalogError>),
}

/// The handle request handlers and the background loops use.
#[derive(Clone)]
pub struct Ledger {
    commands: BatchQueue<Command, Answer>,
    toys: Arc<RwLock<Toys>>,
    store: Arc<StockStore>,
}

/// Milliseconds since the Unix epoch: when a reservation was made or settled. Wall-clock time,
/// so that ages survive a restart.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Ledger {
    /// Starts the writer task. It stops when `shutdown` is cancelled; commands still queued are
    /// answered with [`CatalogError::ShuttingDown`].
    ///
    /// `hold_until`: no change is answered before this instant. After a restart, front-ends may
    /// still hold leases granted by the previous process, which this one does not know of, and
    /// that process may have committed a change without pushing its invalidation; waiting one
    /// lease length makes sure every front-end has either renewed with us (and emptied its
    /// cache, since its lease is `fresh` here) or stopped trusting its cache.
    pub fn start(
        store: Arc<StockStore>,
        leases: Arc<CacheLeases>,
        metrics: CatalogMetrics,
        hold_until: Instant,
        shutdown: CancellationToken,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), CatalogError> {
        let toys = Arc::new(RwLock::new(store.load()?));
        let writer = Arc::new(Writer {
            store: store.clone(),
            toys: toys.clone(),
            leases,
            metrics: metrics.clone(),
        });
        let (commands, task) = BatchQueue::start(
            MAX_BATCH,
            metrics.commit_batch_size.clone(),
            shutdown,
            move |commands: Vec<Command>| {
                let writer = writer.clone();
                async move {
                    // Checked first: even an expired sleep waits for the timer's next tick.
                    if Instant::now() < hold_until {
                        tokio::time::sleep_until(hold_until).await;
                    }
                    writer.commit(commands).await
                }
            },
        );
        Ok((
            Self {
                commands,
                toys,
                store,
            },
            task,
        ))
    }

    /// Reserves `reservation.quantity` of a toy, once per reservation id.
    pub async fn reserve(&self, reservation: Reservation) -> Result<ReserveOutcome, CatalogError> {
        if reservation.quantity == 0 {
            return Err(CatalogError::InvalidQuantity);
        }
        if !valid_request_id(&reservation.id.request_id) {
            return Err(CatalogError::InvalidRequestId);
        }
        match self.commands.submit(Command::Reserve(reservation)).await {
            Ok(Answer::Reserve(result)) => result,
            Ok(_) => Err(mixed_up()),
            Err(_) => Err(CatalogError::ShuttingDown),
        }
    }

    /// Several reservations at once, answered in order. They are queued together, so they
    /// usually share one commit.
    pub async fn reserve_many(
        &self,
        reservations: Vec<Reservation>,
    ) -> Vec<Result<ReserveOutcome, CatalogError>> {
        futures::future::join_all(reservations.into_iter().map(|r| self.reserve(r))).await
    }

    /// Confirms or releases a reservation, as the Raft log decided.
    pub async fn settle(&self, settlement: Settlement) -> Result<SettleOutcome, CatalogError> {
        if !valid_request_id(&settlement.id.request_id) {
            return Err(CatalogError::InvalidRequestId);
        }
        match self.commands.submit(Command::Settle(settlement)).await {
            Ok(Answer::Settle(result)) => result,
            Ok(_) => Err(mixed_up()),
            Err(_) => Err(CatalogError::ShuttingDown),
        }
    }

    /// Several settlements at once, answered in order.
    pub async fn settle_many(
        &self,
        settlements: Vec<Settlement>,
    ) -> Vec<Result<SettleOutcome, CatalogError>> {
        futures::future::join_all(settlements.into_iter().map(|s| self.settle(s))).await
    }

    /// Refills every toy whose stock is 0; returns their names.
    pub async fn restock(&self) -> Result<Vec<String>, CatalogError> {
        match self.commands.submit(Command::Restock).await {
            Ok(Answer::Restock(result)) => result,
            Ok(_) => Err(mixed_up()),
            Err(_) => Err(CatalogError::ShuttingDown),
        }
    }

    /// Reservations made at least `older_than` ago and still pending, oldest first.
    pub fn pending(
        &self,
        older_than: Duration,
        limit: usize,
    ) -> Result<Vec<PendingReservation>, CatalogError> {
        let now = unix_ms();
        self.store.pending(
            now.saturating_sub(older_than.as_millis() as u64),
            now,
            limit,
        )
    }

    /// Deletes records that finished more than `retention` ago, at most `limit` of them;
    /// returns how many.
    pub fn forget_older_than(
        &self,
        retention: Duration,
        limit: usize,
    ) -> Result<usize, CatalogError> {
        let cutoff = unix_ms().saturating_sub(retention.as_millis() as u64);
        let expired = self.store.expired(cutoff, limit)?;
        self.store.forget(&expired)?;
        Ok(expired.len())
    }

    pub fn product(&self, name: &str) -> Option<VersionedProduct> {
        self.toys
            .read()
            .get(name)
            .map(|state| versioned(name, state))
    }

    pub fn products(&self) -> Vec<VersionedProduct> {
        self.toys
            .read()
            .iter()
            .map(|(name, state)| versioned(name, state))
            .collect()
    }

    /// Every toy's accounts.
    pub fn stock(&self) -> Vec<ToyStock> {
        let initial = u64::from(self.store.initial_stock());
        self.toys
            .read()
            .iter()
            .map(|(name, state)| ToyStock {
                name: name.clone(),
                initial,
                restocked: state.restocked,
                pending: state.pending,
                quantity: state.quantity,
                version: state.version,
            })
            .collect()
    }
}

fn mixed_up() -> CatalogError {
    CatalogError::Storage("a command got another command's answer".into())
}

fn versioned(name: &str, state: &ToyState) -> VersionedProduct {
    VersionedProduct {
        name: name.to_string(),
        price: state.price,
        quantity: state.quantity,
        version: state.version,
    }
}

struct Writer {
    store: Arc<StockStore>,
    toys: Arc<RwLock<Toys>>,
    leases: Arc<CacheLeases>,
    metrics: CatalogMetrics,
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
    async fn commit(self: Arc<Self>, commands: Vec<Command>) -> Vec<Answer> {
        // In place: a few map updates and point reads (memtable or block cache); only the
        // commit below may wait on the disk.
        let mut applied = self.apply(commands);
        let stale = self.stale_toys(&applied);
        let writer = self.clone();
        let changes = std::mem::take(&mut applied.changes);
        let sync = applied.reserves;
        let written = tokio::task::spawn_blocking(move || {
            let written = writer.store.commit(&changes, sync);
            (changes, written)
        });
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
            }
            Some(message) => {
                tracing::error!(%message, "cannot commit stock changes");
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
        let now = unix_ms();
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
                        state.version += 1;
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
            if record.state == ReservationState::Released {
                // The log abandoned this attempt: it can never take stock again.
                return Ok(ReserveOutcome::Released);
            }
            if record.name != reservation.name || record.quantity != reservation.quantity {
                return Err(CatalogError::RequestIdReused(reservation.id.to_string()));
            }
            self.metrics.duplicate_reservations.inc();
            return Ok(record.outcome);
        }
        let Some(state) = working.get_mut(&reservation.name) else {
            // Unknown toys are not recorded: the answer cannot change, so a retry gets it too.
            return Ok(ReserveOutcome::UnknownProduct);
        };
        let (outcome, record_state) = if state.quantity >= reservation.quantity {
            state.quantity -= reservation.quantity;
            state.pending += u64::from(reservation.quantity);
            state.version += 1;
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
            applied
                .changes
                .settled_added
                .push((now, reservation.id.clone()));
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
        match (record.state, decision) {
            (ReservationState::Pending, _) => {
                if let Some(state) = working.get_mut(&record.name) {
                    let units = u64::from(record.quantity);
                    state.pending = state.pending.saturating_sub(units);
                    if decision == Decision::Release {
                        state.quantity = state.quantity.saturating_add(record.quantity);
                        state.version += 1;
                        applied.released_units += units;
                    } else {
                        applied.confirmed_units += units;
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
                record.state = match decision {
                    Decision::Confirm => ReservationState::Confirmed,
                    Decision::Release => ReservationState::Released,
                };
                let outcome = settled(record.state);
                recorded.insert(id, record);
                Ok(outcome)
            }
            (ReservationState::Confirmed, Decision::Release)
            | (ReservationState::Released, Decision::Confirm) => {
                // The log decides once per reservation; a contradicting settlement is a bug
                // somewhere. The first settlement stands.
                tracing::error!(%id, ?decision, state = ?record.state, "a settlement contradicts an earlier one");
                Ok(settled(record.state))
            }
            (state, _) => Ok(settled(state)),
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

/// Calls [`Ledger::restock`] every `interval`, and forgets finished reservation records older
/// than `retention` once a minute, until `shutdown`.
pub async fn housekeeping_loop(
    ledger: Ledger,
    interval: Duration,
    retention: Duration,
    shutdown: CancellationToken,
) {
    let mut restock = tokio::time::interval_at(Instant::now() + interval, interval);
    restock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let minute = Duration::from_secs(60);
    let mut forget = tokio::time::interval_at(Instant::now() + minute, minute);
    forget.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = restock.tick() => {
                if let Err(err) = ledger.restock().await {
                    tracing::warn!(%err, "restock failed");
                }
            }
            _ = forget.tick() => {
                let ledger = ledger.clone();
                let forgotten = tokio::task::spawn_blocking(move || {
                    ledger.forget_older_than(retention, 100_000)
                })
                .await;
                match forgotten {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => tracing::info!(records = n, "forgot finished reservations past their retention"),
                    Ok(Err(err)) => tracing::warn!(%err, "cannot forget old reservations"),
                    Err(err) => tracing::warn!(%err, "the retention task failed"),
                }
            }
        }
    }
}
