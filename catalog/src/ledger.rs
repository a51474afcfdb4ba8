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
//! Retention, the rule every answer and every forgetting follows, is in [`retention`]; the
//! writer task that applies and commits a batch is in [`writer`].

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use api::batch::BatchQueue;
use api::catalog::{
    PendingReservation, Reservation, ReservationId, ReservationRecordView, ReservationRecordsPage,
    ReservationStatus, ReserveOutcome, SettleOutcome, Settlement, ToyStock, VersionedProduct,
};
use api::request_id::valid_request_id;
use parking_lot::RwLock;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod retention;
mod writer;

pub use retention::{DEFAULT_REFUSAL_RETENTION, Retention, SettleStep, answer_again, settle_step};
use writer::{Writer, versioned};

use crate::cache_lease::CacheLeases;
use crate::error::CatalogError;
use crate::faults::Faults;
use crate::metrics::CatalogMetrics;
use crate::store::{ReservationState, StockStore, Toys};

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

/// How the ledger is run.
#[derive(Clone)]
pub struct LedgerSettings {
    pub retention: Retention,
    pub clock: Clock,
    /// Broken behaviours armed for a verification run (`--break`); none normally.
    pub faults: Faults,
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
