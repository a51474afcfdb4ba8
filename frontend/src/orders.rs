//! `OrderForwarder`: orders and order queries go to the selected replica, with failover.
//!
//! Every `POST /orders` carries a request id (the client's `Idempotency-Key`, or a fresh UUID)
//! that the replicas use to deduplicate. So a request that failed for any reason can be sent
//! again, to the same or another replica, without risking a second order: the front-end keeps
//! trying, re-selecting when the replica does not answer or keeps saying it cannot serve, until
//! it gets an answer or its retry budget runs out. Each attempt tells the replica how long it
//! will wait (`x-budget-ms`), so the replica can wait out an election instead of failing fast.
//!
//! Concurrent orders leave the front-end together: each replica has a [`BatchQueue`], and
//! every order waiting while one `POST /orders/batch` is in flight goes in the next one. The
//! leader then handles one HTTP request, one catalog call and one Raft entry per batch.
//!
//! When to retry, and where, is decided in [`retry`]. A front-end that is shutting down tries
//! no further attempt: the requests it is finishing answer 503 at once, and the client retries
//! elsewhere with the same request id.

mod retry;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use api::batch::BatchQueue;
use api::client::{CallError, ServiceClient, per_item_answers};
use api::cluster::NodeAddrs;
use api::order::{Hop, OrderPlaced, OrderRecord, PlaceOrder, PlaceOrders, ReplicaClient};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::FrontendError;
use crate::selector::ReplicaSelector;
use retry::{Budget, Next};

/// Batches of orders one replica may be sent at once: while one is at the leader's catalog
/// call, the next can be in its Raft log.
const BATCHES_IN_FLIGHT: usize = 2;

/// An order and how long its sender waits for it.
type Batched = (PlaceOrder, Duration);

/// One replica as the forwarder reaches it.
pub struct Replica {
    client: ReplicaClient,
    /// Orders to this replica, batched; `None` when batching is off.
    orders: Option<BatchQueue<Batched, Result<OrderPlaced, CallError>>>,
}

impl Replica {
    async fn place(&self, order: PlaceOrder, budget: Duration) -> Result<OrderPlaced, CallError> {
        match &self.orders {
            Some(queue) => queue
                .submit((order, budget))
                .await
                .map_err(|stopped| CallError::Unreachable(stopped.to_string()))?,
            None => self.client.place(&order, Hop::with_budget(budget)).await,
        }
    }
}

/// Sends one batch of orders; every order gets the call's failure if the call fails.
async fn place_all(
    client: &ReplicaClient,
    batch: Vec<Batched>,
) -> Vec<Result<OrderPlaced, CallError>> {
    let count = batch.len();
    // The call may take as long as its most patient order waits.
    let budget = batch.iter().map(|(_, b)| *b).max().unwrap_or_default();
    let orders = PlaceOrders {
        orders: batch.into_iter().map(|(order, _)| order).collect(),
    };
    let answers = client.place_many(&orders, Hop::with_budget(budget)).await;
    per_item_answers(answers, count, "orders")
}

pub struct OrderForwarder {
    selector: ReplicaSelector,
    /// Every replica, reached with the attempt deadline.
    replicas: BTreeMap<u64, Replica>,
    /// How long one order may be retried in all.
    budget: Duration,
    /// How long one attempt may take.
    attempt_timeout: Duration,
    retries: Counter,
    /// Cancelled when the front-end stops: its batching tasks end and no attempt follows.
    shutdown: CancellationToken,
}

/// How the forwarder retries and batches.
pub struct ForwarderSettings {
    /// How long one order may be retried in all.
    pub budget: Duration,
    /// How long one attempt may take.
    pub attempt_timeout: Duration,
    /// Most orders in one batch; 1 sends each order alone.
    pub batch_max: usize,
}

impl OrderForwarder {
    /// `client` bounds each attempt with its own deadline. The batching tasks stop at
    /// `shutdown`, and so do retries; the tasks are returned for the server handle to wait on.
    pub fn start(
        selector: ReplicaSelector,
        nodes: &NodeAddrs,
        client: ServiceClient,
        settings: ForwarderSettings,
        retries: Counter,
        batch_sizes: Histogram,
        shutdown: CancellationToken,
    ) -> (Self, Vec<JoinHandle<()>>) {
        let mut tasks = Vec::new();
        let replicas = ReplicaClient::all(nodes, &client)
            .into_iter()
            .map(|(id, client)| {
                let orders = (settings.batch_max > 1).then(|| {
                    let batch_client = client.clone();
                    let (queue, task) = BatchQueue::start_pipelined(
                        settings.batch_max.min(api::order::MAX_ORDER_BATCH),
                        BATCHES_IN_FLIGHT,
                        batch_sizes.clone(),
                        shutdown.clone(),
                        move |batch: Vec<Batched>| {
                            let client = batch_client.clone();
                            async move { place_all(&client, batch).await }
                        },
                    );
                    tasks.push(task);
                    queue
                });
                (id, Replica { client, orders })
            })
            .collect();
        let forwarder = Self {
            selector,
            replicas,
            budget: settings.budget,
            attempt_timeout: settings.attempt_timeout,
            retries,
            shutdown,
        };
        (forwarder, tasks)
    }

    pub fn selector(&self) -> &ReplicaSelector {
        &self.selector
    }

    /// Places an order exactly once, whatever fails on the way.
    pub async fn place(&self, order: PlaceOrder) -> Result<OrderPlaced, FrontendError> {
        self.with_failover(|replica, budget| replica.place(order.clone(), budget))
            .await
    }

    /// Reads an order from the replicas' linearizable view.
    pub async fn lookup(&self, number: u64) -> Result<OrderRecord, FrontendError> {
        self.with_failover(|replica, budget| {
            replica.client.lookup(number, Hop::with_budget(budget))
        })
        .await
    }

    async fn with_failover<'a, T, F, Fut>(&'a self, request: F) -> Result<T, FrontendError>
    where
        F: Fn(&'a Replica, Duration) -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let mut budget = Budget::new(self.budget, Instant::now());
        let mut last_error = String::from("no attempt made");
        let mut target = self.selector.current().await;
        while let Some(attempt) = budget.next(Instant::now()) {
            // A stopping front-end tries nothing more: a request the server is finishing would
            // otherwise retry for its whole budget (and, once the batching tasks have stopped,
            // spin, every attempt failing at once with `Stopped`).
            if self.shutdown.is_cancelled() {
                return Err(FrontendError::ShuttingDown { last_error });
            }
            if attempt.is_retry() {
                self.retries.inc();
            }
            let id = match target {
                Ok(id) => id,
                Err(err) => {
                    last_error = err.to_string();
                    tokio::time::sleep(attempt.backoff()).await;
                    target = self.selector.current().await;
                    continue;
                }
            };
            let Some(replica) = self.replicas.get(&id) else {
                last_error = format!("replica {id} is not in the address book");
                target = self.selector.failed(id).await;
                continue;
            };
            let attempt_budget = attempt.timeout(self.attempt_timeout);
            let answer = tokio::time::timeout(attempt_budget, request(replica, attempt_budget))
                .await
                .unwrap_or_else(|_| {
                    Err(CallError::Timeout(format!(
                        "replica {id} did not answer within {attempt_budget:?}"
                    )))
                });
            let err = match answer {
                Ok(value) => {
                    self.selector.served(id);
                    return Ok(value);
                }
                Err(err) => err,
            };
            // Checked here too, before a re-selection would probe every replica.
            if self.shutdown.is_cancelled() {
                return Err(FrontendError::ShuttingDown {
                    last_error: err.to_string(),
                });
            }
            // Asked only for a 503: the replica says it cannot serve (no leader, no quorum).
            // For a moment that is an election; for longer than one, it is cut off or broken.
            let out_of_patience = || self.selector.cannot_serve(id);
            match retry::after(&err, out_of_patience) {
                Next::Reselect if err.is_unreachable() => {
                    tracing::warn!(replica = id, %err, attempt = attempt.number, "selected replica did not answer; selecting again");
                    last_error = err.to_string();
                    target = self.selector.failed(id).await;
                }
                Next::Reselect => {
                    tracing::warn!(replica = id, %err, "selected replica has not been able to serve for an election timeout; selecting again");
                    last_error = err.to_string();
                    target = self.selector.failed(id).await;
                }
                Next::Backoff => {
                    tracing::debug!(replica = id, %err, attempt = attempt.number, "selected replica cannot serve or is busy; retrying");
                    last_error = err.to_string();
                    tokio::time::sleep(attempt.backoff()).await;
                }
                Next::GiveUp => {
                    if let CallError::Api(err) = err {
                        return Err(FrontendError::Api(err));
                    }
                    // `after` gives up only on an enveloped answer; anything else is retried.
                    last_error = err.to_string();
                    tokio::time::sleep(attempt.backoff()).await;
                }
            }
        }
        Err(FrontendError::OrdersUnavailable {
            budget: self.budget,
            last_error,
        })
    }
}
