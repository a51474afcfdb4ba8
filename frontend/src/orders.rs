//! `OrderForwarder`: orders and order queries go to the selected replica, with failover.
//!
//! Every `POST /orders` carries a request id (the client's `Idempotency-Key`, or a fresh UUID)
//! that the replicas use to deduplicate. So a request that failed for any reason can be sent
//! again, to the same or another replica, without risking a second order: the front-end keeps
//! trying, re-selecting when the replica does not answer or keeps saying it cannot serve, until
//! it gets an answer or its retry budget runs out. Each attempt tells the replica how long it
//! will wait (`x-budget-ms`), so the replica can wait out an election instead of failing fast.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use api::client::{CallError, ServiceClient};
use api::cluster::NodeAddrs;
use api::order::{Hop, OrderPlaced, OrderRecord, PlaceOrder, ReplicaClient};
use axum::http::StatusCode;
use prometheus_client::metrics::counter::Counter;
use tokio::time::Instant;

use crate::error::FrontendError;
use crate::selector::ReplicaSelector;

/// Pause before retrying a replica that answered "not now".
const BACKOFF: Duration = Duration::from_millis(20);

pub struct OrderForwarder {
    selector: ReplicaSelector,
    /// Every replica, reached with the attempt deadline.
    replicas: BTreeMap<u64, ReplicaClient>,
    /// How long one order may be retried in all.
    budget: Duration,
    /// How long one attempt may take.
    attempt_timeout: Duration,
    retries: Counter,
}

impl OrderForwarder {
    /// `client` bounds each attempt with its own deadline.
    pub fn new(
        selector: ReplicaSelector,
        nodes: &NodeAddrs,
        client: ServiceClient,
        budget: Duration,
        attempt_timeout: Duration,
        retries: Counter,
    ) -> Self {
        Self {
            selector,
            replicas: ReplicaClient::all(nodes, &client),
            budget,
            attempt_timeout,
            retries,
        }
    }

    pub fn selector(&self) -> &ReplicaSelector {
        &self.selector
    }

    /// Places an order exactly once, whatever fails on the way.
    pub async fn place(&self, order: PlaceOrder) -> Result<OrderPlaced, FrontendError> {
        self.with_failover(|replica, budget| replica.place(&order, Hop::with_budget(budget)))
            .await
    }

    /// Reads an order from the replicas' linearizable view.
    pub async fn lookup(&self, number: u64) -> Result<OrderRecord, FrontendError> {
        self.with_failover(|replica, budget| replica.lookup(number, Hop::with_budget(budget)))
            .await
    }

    async fn with_failover<'a, T, F, Fut>(&'a self, request: F) -> Result<T, FrontendError>
    where
        F: Fn(&'a ReplicaClient, Duration) -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let deadline = Instant::now() + self.budget;
        let mut last_error = String::from("no attempt made");
        let mut target = self.selector.current().await;
        let mut attempt = 0u32;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            if attempt > 0 {
                self.retries.inc();
            }
            attempt += 1;
            let id = match target {
                Ok(id) => id,
                Err(err) => {
                    last_error = err.to_string();
                    tokio::time::sleep(BACKOFF.min(remaining)).await;
                    target = self.selector.current().await;
                    continue;
                }
            };
            let Some(replica) = self.replicas.get(&id) else {
                last_error = format!("replica {id} is not in the address book");
                target = self.selector.failed(id).await;
                continue;
            };
            let attempt_budget = remaining.min(self.attempt_timeout);
            let answer = tokio::time::timeout(attempt_budget, request(replica, attempt_budget))
                .await
                .unwrap_or_else(|_| {
                    Err(CallError::Timeout(format!(
                        "replica {id} did not answer within {attempt_budget:?}"
                    )))
                });
            match answer {
                Ok(value) => {
                    self.selector.served(id);
                    return Ok(value);
                }
                Err(err) if err.is_unreachable() => {
                    tracing::warn!(replica = id, %err, attempt, "selected replica did not answer; selecting again");
                    last_error = err.to_string();
                    target = self.selector.failed(id).await;
                }
                Err(err) if err.status() == Some(StatusCode::SERVICE_UNAVAILABLE) => {
                    // The replica says it cannot serve (no leader, no quorum). For a moment
                    // that is an election; for longer than one, it is cut off or broken.
                    tracing::debug!(replica = id, %err, attempt, "selected replica cannot serve; retrying");
                    last_error = err.to_string();
                    if self.selector.cannot_serve(id) {
                        tracing::warn!(replica = id, %err, "selected replica has not been able to serve for an election timeout; selecting again");
                        target = self.selector.failed(id).await;
                    } else {
                        tokio::time::sleep(BACKOFF.min(remaining)).await;
                    }
                }
                Err(err) if err.is_retryable() => {
                    tracing::debug!(replica = id, %err, attempt, "order service busy; retrying");
                    last_error = err.to_string();
                    tokio::time::sleep(BACKOFF.min(remaining)).await;
                }
                Err(CallError::Api(err)) => return Err(FrontendError::Api(err)),
                Err(err) => {
                    last_error = err.to_string();
                    tokio::time::sleep(BACKOFF.min(remaining)).await;
                }
            }
        }
        Err(FrontendError::OrdersUnavailable {
            budget: self.budget,
            last_error,
        })
    }
}
