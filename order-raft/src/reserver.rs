//! `CatalogReserver`: the leader's reservations at the catalog, batched into one
//! `POST /reservations` per round trip.
//!
//! Every order first reserves its stock at the catalog (idempotent by reservation id). Sent one
//! by one, concurrent orders would cost the catalog one HTTP request each; queued in a
//! [`BatchQueue`], all the reservations waiting while one call is in flight go in the next.

use std::time::Duration;

use api::catalog::{CatalogClient, Reservation, ReservationBatch, ReserveOutcome};
use api::client::{CallError, per_item_answers};
use prometheus_client::metrics::histogram::Histogram;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use api::batch::BatchQueue;

type Answer = Result<ReserveOutcome, CallError>;

/// Reservation calls at once: the catalog's writer group-commits whatever arrives during its
/// fsync, so a second call in flight fills the next commit.
const CALLS_IN_FLIGHT: usize = 2;

#[derive(Clone)]
pub struct CatalogReserver {
    catalog: CatalogClient,
    /// `None` when batching is off: every reservation is its own concurrent call.
    queue: Option<BatchQueue<(Reservation, Instant), Answer>>,
}

impl CatalogReserver {
    pub fn start(
        catalog: CatalogClient,
        max_batch: usize,
        batch_sizes: Histogram,
        shutdown: CancellationToken,
    ) -> (Self, Option<JoinHandle<()>>) {
        if max_batch <= 1 {
            let reserver = Self {
                catalog,
                queue: None,
            };
            return (reserver, None);
        }
        let max_batch = max_batch.min(api::catalog::MAX_BATCH);
        let batch_catalog = catalog.clone();
        let (queue, task) = BatchQueue::start_pipelined(
            max_batch,
            CALLS_IN_FLIGHT,
            batch_sizes,
            shutdown,
            move |items: Vec<(Reservation, Instant)>| {
                let catalog = batch_catalog.clone();
                async move {
                    // The call may take as long as its most patient caller waits.
                    let deadline = items.iter().map(|(_, d)| *d).max();
                    let reservations = items.into_iter().map(|(r, _)| r).collect();
                    reserve_all(&catalog, reservations, deadline).await
                }
            },
        );
        let reserver = Self {
            catalog,
            queue: Some(queue),
        };
        (reserver, Some(task))
    }

    /// Reserves at the catalog, waiting until `deadline` at most. The same reservation id never
    /// takes stock twice there, so a caller that gave up may try again.
    pub async fn reserve(&self, reservation: Reservation, deadline: Instant) -> Answer {
        let answer = match &self.queue {
            Some(queue) => {
                tokio::time::timeout_at(deadline, queue.submit((reservation, deadline))).await
            }
            None => {
                let call = reserve_all(&self.catalog, vec![reservation], Some(deadline));
                tokio::time::timeout_at(deadline, async {
                    Ok(call.await.pop().unwrap_or_else(|| {
                        Err(CallError::Protocol("no answer to a reservation".into()))
                    }))
                })
                .await
            }
        };
        match answer {
            Ok(Ok(answer)) => answer,
            Ok(Err(stopped)) => Err(CallError::Unreachable(stopped.to_string())),
            Err(_) => Err(CallError::Timeout(
                "the catalog did not answer the reservation in time".into(),
            )),
        }
    }
}

async fn reserve_all(
    catalog: &CatalogClient,
    reservations: Vec<Reservation>,
    deadline: Option<Instant>,
) -> Vec<Answer> {
    let count = reservations.len();
    let timeout = deadline.map(|d| {
        d.saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    });
    let answers = catalog
        .reserve(&ReservationBatch { reservations }, timeout)
        .await;
    per_item_answers(answers, count, "reservations")
}
