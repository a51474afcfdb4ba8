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
//!
//! # Retention: one rule with the order replicas
//!
//! The replicas forget a request id R (`--dedup-retention`) after its order was placed; the
//! catalog takes the same R. Between the two forgettings a retry of the same key is attempt 0
//! again, so the catalog must never let an old record hand out stock it already gave (answering
//! the duplicate of a confirmed reservation with its stored `Reserved` let the replicas place
//! an order that took no stock). With the *decision horizon* H = R/2 ([`Retention`]):
//!
//! - a record decides only while it is younger than H on the catalog's clock
//!   (`made_ms + H > now`). A reserve that finds a record answers `Confirmed` if it was
//!   confirmed (never the stored `Reserved`), `Released` if it was released, `Expired` if it is
//!   older than H (nothing changes), and otherwise its stored answer ([`answer_again`]);
//! - a release of a pending reservation older than H is refused: the reservation stays pending
//!   and its units stay held (never sold twice), counted in `catalog_releases_refused_total`
//!   and logged as an error. A confirmation is always applied ([`settle_step`]);
//! - `GET /reservations/pending` lists only pending reservations younger than H, so the
//!   leader's sweeper does not propose a held one for abandonment over and over;
//! - finished records (confirmed, released) are forgotten R + H after they finished; refused
//!   ones (out of stock) after the much shorter refusal window ([`Retention::refusal_ms`]).
//!
//! Why refusals are kept at all, and only briefly: no order and no log entry records that a
//! request id was refused, so the record is what makes an out-of-stock answer final. Without
//! it, a duplicate of the refused request still on its way inside the store (an attempt the
//! front-end gave up on, still queued at a leader) could reserve the same id once stock came
//! back, and place an order for a client that was told "out of stock". Every such duplicate
//! lives at most one request's deadline (the front-end's retry budget, 5 s; a leader's, at most
//! half the reservation timeout), so the window only has to outlast that, with a wide margin;
//! a client retrying the same key within the window gets the same answer. Kept R + H (36 h)
//! instead, every refused order, which costs a client nothing, held a synced record on disk
//! that long.
//!
//! Why this is safe: the replicas remember an order for R after it was placed, and placement
//! comes after its reservation was made. So as long as the clocks of the catalog and the
//! replicas differ by less than R/4, a reservation younger than H whose order committed is
//! still remembered by the replicas when its duplicate or its release is decided (the log then
//! answers the duplicate itself, and never abandons a committed order); past H the catalog no
//! longer lets the reservation change hands. A finished record is kept R + H, past the replicas'
//! R, with a margin of H for the clocks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use api::batch::BatchQueue;
use api::cache_lease::StaleToy;
use api::catalog::{
    Decision, PendingReservation, Reservation, ReservationId, ReservationRecordView,
    ReservationRecordsPage, ReservationStatus, ReserveOutcome, SettleOutcome, Settlement, ToyStock,
    VersionedProduct,
};
use api::request_id::valid_request_id;
use parking_lot::RwLock;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cache_lease::CacheLeases;
use crate::error::CatalogError;
use crate::faults::Faults;
use crate::metrics::CatalogMetrics;
use crate::store::{
    Changes, ReservationRecord, ReservationState, StockStore, ToyState, Toys, next_version,
};

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

/// Records forgotten per step of the housekeeping loop; it yields between steps.
pub const FORGET_CHUNK: usize = 10_000;

/// The handle request handlers and the background loops use.
#[derive(Clone)]
pub struct Ledger {
    commands: BatchQueue<Command, Answer>,
    toys: Arc<RwLock<Toys>>,
    store: Arc<StockStore>,
    retention: Retention,
    clock: Clock,
    metrics: CatalogMetrics,
}

/// Milliseconds since the Unix epoch: when a reservation was made or settled. Wall-clock time,
/// so that ages survive a restart.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Where the ledger reads the time (Unix milliseconds): [`system_clock`], or a test's own.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(unix_ms)
}

/// How long a refused reservation is remembered unless told otherwise (`--refusal-retention-ms`):
/// twelve times the front-end's retry budget, six times the reservation timeout.
pub const DEFAULT_REFUSAL_RETENTION: Duration = Duration::from_secs(60);

/// The retention rule of the module's doc, for a dedup retention R.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    dedup_ms: u64,
    refusal_ms: u64,
}

impl Retention {
    /// The rule for R = `dedup_retention`, refusals kept [`DEFAULT_REFUSAL_RETENTION`].
    pub fn new(dedup_retention: Duration) -> Self {
        Self {
            dedup_ms: u64::try_from(dedup_retention.as_millis()).unwrap_or(u64::MAX),
            refusal_ms: DEFAULT_REFUSAL_RETENTION.as_millis() as u64,
        }
    }

    /// The same rule with refused reservations kept `window` (never longer than the other
    /// finished records).
    pub fn with_refusal_window(mut self, window: Duration) -> Self {
        self.refusal_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// How long a refused reservation is remembered, in milliseconds.
    pub fn refusal_ms(&self) -> u64 {
        self.refusal_ms
            .min(self.dedup_ms.saturating_add(self.horizon_ms()))
    }

    /// Where a reservation refused at `now` goes in the index of finished records, which is
    /// forgotten R + H behind the clock ([`Self::forget_cutoff`]): [`Self::refusal_ms`] after
    /// `now`, less R + H, so that it is forgotten once the refusal window is over. Never in
    /// the future, and above every cutoff so far (the clock moving forward), so forgetting,
    /// which resumes where it stopped, still finds it.
    pub fn refusal_finished_at(&self, now: u64) -> u64 {
        let keep = self.dedup_ms.saturating_add(self.horizon_ms());
        now.saturating_sub(keep - self.refusal_ms())
    }

    /// H = R/2: how long a reservation record decides.
    pub fn horizon_ms(&self) -> u64 {
        self.dedup_ms / 2
    }

    /// Whether a reservation made at `made_ms` still decides at `now`.
    pub fn decides(&self, made_ms: u64, now: u64) -> bool {
        made_ms.saturating_add(self.horizon_ms()) > now
    }

    /// Records that finished at or before this are forgotten at `now`: R + H ago.
    pub fn forget_cutoff(&self, now: u64) -> u64 {
        now.saturating_sub(self.dedup_ms.saturating_add(self.horizon_ms()))
    }
}

/// How the ledger is run.
#[derive(Clone)]
pub struct LedgerSettings {
    pub retention: Retention,
    pub clock: Clock,
    /// Broken behaviours armed for a verification run (`--break`); none normally.
    pub faults: Faults,
}

/// How a reservation whose id already has a record is answered; nothing changes.
pub fn answer_again(
    record: &ReservationRecord,
    reservation: &Reservation,
    now: u64,
    retention: Retention,
) -> Result<ReserveOutcome, CatalogError> {
    match record.state {
        // Its stock belongs to a committed order: never hand it out again.
        ReservationState::Confirmed => Ok(ReserveOutcome::Confirmed),
        // The log abandoned this attempt: it can never take stock again.
        ReservationState::Released => Ok(ReserveOutcome::Released),
        ReservationState::Pending | ReservationState::Refused
            if !retention.decides(record.made_ms, now) =>
        {
            Ok(ReserveOutcome::Expired)
        }
        ReservationState::Pending | ReservationState::Refused => {
            if record.name != reservation.name || record.quantity != reservation.quantity {
                return Err(CatalogError::RequestIdReused(reservation.id.to_string()));
            }
            Ok(record.outcome.clone())
        }
    }
}

/// What a settlement does to a reservation that has a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleStep {
    /// Settle the pending reservation into this state.
    Apply(ReservationState),
    /// A release of a pending reservation past the horizon: it stays pending, units held.
    RefuseRelease,
    /// The record was settled the other way: the first settlement stands.
    Contradiction,
    /// Nothing to do; answer with what the record is.
    AsBefore,
}

/// The settlement rule of the module's doc.
pub fn settle_step(
    state: ReservationState,
    made_ms: u64,
    decision: Decision,
    now: u64,
    retention: Retention,
) -> SettleStep {
    match (state, decision) {
        (ReservationState::Pending, Decision::Confirm) => {
            SettleStep::Apply(ReservationState::Confirmed)
        }
        (ReservationState::Pending, Decision::Release) if retention.decides(made_ms, now) => {
            SettleStep::Apply(ReservationState::Released)
        }
        (ReservationState::Pending, Decision::Release) => SettleStep::RefuseRelease,
        (ReservationState::Confirmed, Decision::Release)
        | (ReservationState::Released, Decision::Confirm) => SettleStep::Contradiction,
        _ => SettleStep::AsBefore,
    }
}

impl Ledger {
    /// Starts the writer task. It stops when `shutdown` is cancelled; commands still queued are
    /// answered with [`CatalogError::ShuttingDown`].
    ///
    /// `ready`: no change is committed (nor answered) before it reads `true`. After a restart,
    /// front-ends may still cache under leases granted by the previous process, which may have
    /// committed a change without pushing its invalidation; `CacheLeases::reconcile`
    /// opens the gate once every such front-end has been reset or its lease has run out. If
    /// the gate closes without opening, every change is answered
    /// [`CatalogError::ShuttingDown`].
    pub fn start(
        store: Arc<StockStore>,
        leases: Arc<CacheLeases>,
        metrics: CatalogMetrics,
        ready: watch::Receiver<bool>,
        settings: LedgerSettings,
        shutdown: CancellationToken,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), CatalogError> {
        let toys = Arc::new(RwLock::new(store.load()?));
        let writer = Arc::new(Writer {
            store: store.clone(),
            toys: toys.clone(),
            leases,
            metrics: metrics.clone(),
            retention: settings.retention,
            clock: settings.clock.clone(),
            floor: store.version_floor(),
            faults: settings.faults,
        });
        let (commands, task) = BatchQueue::start(
            MAX_BATCH,
            metrics.commit_batch_size.clone(),
            shutdown,
            move |commands: Vec<Command>| {
                let writer = writer.clone();
                let mut ready = ready.clone();
                async move {
                    if !*ready.borrow() && ready.wait_for(|open| *open).await.is_err() {
                        return shutting_down(commands);
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
                retention: settings.retention,
                clock: settings.clock,
                metrics,
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

    /// Reservations made at least `older_than` ago and still pending, oldest first; only those
    /// younger than the horizon (an older one is held: no release of it is accepted).
    pub fn pending(
        &self,
        older_than: Duration,
        limit: usize,
    ) -> Result<Vec<PendingReservation>, CatalogError> {
        let now = (self.clock)();
        self.store.pending(
            now.saturating_sub(self.retention.horizon_ms()),
            now.saturating_sub(older_than.as_millis() as u64),
            now,
            limit,
        )
    }

    /// One page of every reservation record held, after `after` (blocking: call it off the
    /// service's thread), with the finish time forgetting has reached.
    pub fn records(
        &self,
        after: Option<&ReservationId>,
        limit: usize,
    ) -> Result<ReservationRecordsPage, CatalogError> {
        let found = self.store.records_after(after, limit)?;
        let next = (found.len() >= limit)
            .then(|| found.last().map(|(id, _)| id.clone()))
            .flatten();
        let records = found
            .into_iter()
            .map(|(id, record)| ReservationRecordView {
                id,
                name: record.name,
                quantity: record.quantity,
                status: match record.state {
                    ReservationState::Pending => ReservationStatus::Pending,
                    ReservationState::Confirmed => ReservationStatus::Confirmed,
                    ReservationState::Released => ReservationStatus::Released,
                    ReservationState::Refused => ReservationStatus::Refused,
                },
                made_ms: record.made_ms,
            })
            .collect();
        Ok(ReservationRecordsPage {
            records,
            next,
            forgotten_through_ms: self.store.forgotten_through(),
        })
    }

    /// Deletes up to `chunk` records that finished R + H ago or earlier (blocking: call it
    /// off the service's thread); returns how many.
    pub fn forget_chunk(&self, chunk: usize) -> Result<usize, CatalogError> {
        let cutoff = self.retention.forget_cutoff((self.clock)());
        let expired = self.store.expired(cutoff, chunk)?;
        self.store.forget(&expired)?;
        self.metrics
            .reservations_forgotten
            .inc_by(expired.len() as u64);
        Ok(expired.len())
    }

    /// Forgets every record due, `chunk` at a time (blocking); returns how many.
    pub fn forget_due(&self, chunk: usize) -> Result<usize, CatalogError> {
        let chunk = chunk.max(1);
        let mut total = 0;
        loop {
            let forgotten = self.forget_chunk(chunk)?;
            total += forgotten;
            if forgotten < chunk {
                return Ok(total);
            }
        }
    }

    /// Refreshes the record gauges (`catalog_reservation_records`,
    /// `catalog_pending_reservations`).
    pub fn measure_records(&self) -> Result<(), CatalogError> {
        let records = self.store.reservation_records()?;
        self.metrics
            .reservation_records
            .set(i64::try_from(records).unwrap_or(i64::MAX));
        self.metrics
            .pending_reservations
            .set(i64::try_from(self.store.pending_count()).unwrap_or(i64::MAX));
        Ok(())
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

/// Every command answered [`CatalogError::ShuttingDown`].
fn shutting_down(commands: Vec<Command>) -> Vec<Answer> {
    commands
        .into_iter()
        .map(|command| match command {
            Command::Reserve(_) => Answer::Reserve(Err(CatalogError::ShuttingDown)),
            Command::Settle(_) => Answer::Settle(Err(CatalogError::ShuttingDown)),
            Command::Restock => Answer::Restock(Err(CatalogError::ShuttingDown)),
        })
        .collect()
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
    retention: Retention,
    clock: Clock,
    /// The lowest version this run may give a change: see [`next_version`].
    floor: u64,
    faults: Faults,
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

/// How often the housekeeping loop forgets what is due and refreshes the record gauges: often
/// enough that one pass is a few chunks at any sustained rate.
const FORGET_EVERY: Duration = Duration::from_secs(1);

/// Calls [`Ledger::restock`] every `interval`, and every [`FORGET_EVERY`] forgets the finished
/// reservation records due (R + H after they finished), until `shutdown`.
pub async fn housekeeping_loop(ledger: Ledger, interval: Duration, shutdown: CancellationToken) {
    let mut restock = tokio::time::interval_at(Instant::now() + interval, interval);
    restock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut forget = tokio::time::interval_at(Instant::now() + FORGET_EVERY, FORGET_EVERY);
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
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    () = forget_pass(&ledger) => {}
                }
            }
        }
    }
}

/// Forgets every record due, one chunk per blocking task, letting the other tasks run in
/// between; then refreshes the record gauges.
async fn forget_pass(ledger: &Ledger) {
    let mut total = 0;
    loop {
        let step = ledger.clone();
        match tokio::task::spawn_blocking(move || step.forget_chunk(FORGET_CHUNK)).await {
            Ok(Ok(forgotten)) => {
                total += forgotten;
                if forgotten < FORGET_CHUNK {
                    break;
                }
            }
            Ok(Err(err)) => {
                tracing::warn!(%err, "cannot forget old reservations");
                break;
            }
            Err(err) => {
                tracing::warn!(%err, "the retention task failed");
                break;
            }
        }
        tokio::task::yield_now().await;
    }
    if total > 0 {
        tracing::debug!(
            records = total,
            "forgot finished reservations past their retention"
        );
    }
    let measure = ledger.clone();
    match tokio::task::spawn_blocking(move || measure.measure_records()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::warn!(%err, "cannot count reservation records"),
        Err(err) => tracing::warn!(%err, "the record count task failed"),
    }
}
