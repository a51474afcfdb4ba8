//! Settling reservations: every reservation ends confirmed or released, as the Raft log
//! decided, whatever crashed in between.
//!
//! - The [`Settler`] confirms the reservation of every order the leader committed, batched, off
//!   the order's critical path (the order is answered without waiting for it).
//! - The [`Sweeper`] runs on the leader. Every second it asks the catalog for reservations left
//!   pending longer than the bound (the order's leader crashed, its front-end gave up, its
//!   entry did not commit in time, a confirmation was lost) and proposes an abandonment of
//!   each. The state machine keeps whichever of order and abandonment came first in the log:
//!   an abandonment after the order is a confirmation, one before it releases the stock and
//!   makes the late order fail. The sweeper then settles each at the catalog accordingly.
//!
//! A live order never outlives half the bound (its budget is capped at that), so the sweeper
//! never races an order that could still succeed; and if it did, the log would still decide.

use std::time::Duration;

use api::batch::BatchQueue;
use api::catalog::{CatalogClient, Decision, ReservationId, Settlement, SettlementBatch};
use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::batcher::{SWEEP_WRITE_TIMEOUT, propose};
use crate::leadership::LeaderGate;
use crate::types::{Raft, Verdict};

/// Confirms and releases reservations at the catalog, batched.
#[derive(Clone)]
pub struct Settler {
    queue: BatchQueue<Settlement, ()>,
}

impl Settler {
    pub fn start(
        catalog: CatalogClient,
        max_batch: usize,
        sizes: Histogram,
        shutdown: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let max_batch = max_batch.clamp(1, api::catalog::MAX_BATCH);
        let (queue, task) = BatchQueue::start(max_batch, sizes, shutdown, move |settlements| {
            let catalog = catalog.clone();
            async move {
                let count = settlements.len();
                if let Err(err) = catalog.settle(&SettlementBatch { settlements }).await {
                    // The sweeper settles whatever stays pending.
                    tracing::debug!(%err, count, "settling at the catalog failed; the sweeper will retry");
                }
                vec![(); count]
            }
        });
        (Self { queue }, task)
    }

    /// Confirms a committed order's reservation in the background.
    pub fn confirm(&self, id: ReservationId) {
        let queue = self.queue.clone();
        tokio::spawn(async move {
            let _ = queue
                .submit(Settlement {
                    id,
                    decision: Decision::Confirm,
                })
                .await;
        });
    }

    /// Settles and waits until the catalog has answered (or the settler stopped).
    pub async fn settle(&self, settlements: Vec<Settlement>) {
        futures::future::join_all(settlements.into_iter().map(|s| self.queue.submit(s))).await;
    }
}

/// Counters of the sweeper's work.
#[derive(Clone, Default)]
pub struct SweepMetrics {
    /// Reservations the log abandoned: their stock went back.
    pub released: Counter,
    /// Reservations found pending whose order had committed: confirmed late.
    pub confirmed: Counter,
}

pub struct Sweeper {
    pub raft: Raft,
    pub gate: LeaderGate,
    pub catalog: CatalogClient,
    pub settler: Settler,
    /// Reservations pending longer than this are settled through the log.
    pub bound: Duration,
    pub metrics: SweepMetrics,
}

/// How often the leader looks for reservations left pending.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

impl Sweeper {
    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(SWEEP_EVERY.min(self.bound / 2));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            if self.raft.metrics().borrow_watched().state != ServerState::Leader {
                continue;
            }
            if let Err(why) = self.sweep().await {
                tracing::debug!(why, "sweep incomplete; trying again");
            }
        }
    }

    /// One round: abandon every reservation pending longer than the bound, then settle.
    async fn sweep(&self) -> Result<(), String> {
        let pending = self
            .catalog
            .pending(self.bound, api::catalog::MAX_BATCH)
            .await
            .map_err(|err| format!("cannot list pending reservations: {err}"))?;
        if pending.is_empty() {
            return Ok(());
        }
        let ids: Vec<ReservationId> = pending.into_iter().map(|p| p.id).collect();
        let decided = propose(
            &self.raft,
            &self.gate,
            Vec::new(),
            ids.clone(),
            Some(Instant::now() + SWEEP_WRITE_TIMEOUT),
        )
        .await
        .map_err(|err| format!("cannot commit the abandonments: {err}"))?;
        let settlements: Vec<Settlement> = ids
            .into_iter()
            .zip(decided.abandons)
            .map(|(id, verdict)| {
                let decision = match verdict {
                    Verdict::Confirm => {
                        self.metrics.confirmed.inc();
                        Decision::Confirm
                    }
                    Verdict::Release => {
                        self.metrics.released.inc();
                        Decision::Release
                    }
                };
                tracing::info!(%id, ?decision, "settled a reservation left pending");
                Settlement { id, decision }
            })
            .collect();
        self.settler.settle(settlements).await;
        Ok(())
    }
}
