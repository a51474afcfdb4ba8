//! Forwarding orders and order queries to the selected replica, with failover.
//!
//! Every `POST /orders` carries a request id (the client's `Idempotency-Key`, or a fresh UUID)
//! that the replicas use to deduplicate. So a request that failed for any reason can be sent
//! again, to the same or another replica, without risking a second order: the front-end keeps
//! trying, re-selecting when the replica does not answer and backing off while the cluster
//! elects a leader, until it gets an answer or its retry budget runs out.

use std::time::Duration;

use api::client::{CallError, ServiceClient};
use api::order::{OrderPlaced, OrderRecord, PlaceOrder};
use prometheus_client::metrics::counter::Counter;
use reqwest::RequestBuilder;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::error::FrontendError;
use crate::leader::LeaderSelector;

/// Pause before retrying a replica that answered "no leader yet".
const BACKOFF: Duration = Duration::from_millis(50);

pub struct OrderForwarder {
    selector: LeaderSelector,
    client: ServiceClient,
    /// How long one order may be retried in all.
    budget: Duration,
    /// Deadline of one attempt.
    attempt_timeout: Duration,
    retries: Counter,
}

impl OrderForwarder {
    pub fn new(
        selector: LeaderSelector,
        client: ServiceClient,
        budget: Duration,
        attempt_timeout: Duration,
        retries: Counter,
    ) -> Self {
        Self {
            selector,
            client,
            budget,
            attempt_timeout,
            retries,
        }
    }

    pub fn selector(&self) -> &LeaderSelector {
        &self.selector
    }

    /// Places an order exactly once, whatever fails on the way.
    pub async fn place(&self, order: PlaceOrder) -> Result<OrderPlaced, FrontendError> {
        self.with_failover(|url| self.client.post(&format!("{url}/orders")).json(&order))
            .await
    }

    /// Reads an order from the replicas' linearizable view.
    pub async fn lookup(&self, number: u64) -> Result<OrderRecord, FrontendError> {
        self.with_failover(|url| self.client.get(&format!("{url}/orders/{number}")))
            .await
    }

    async fn with_failover<T, F>(&self, request: F) -> Result<T, FrontendError>
    where
        T: DeserializeOwned,
        F: Fn(&str) -> RequestBuilder,
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
            let (id, url) = match target {
                Ok(ref chosen) => chosen.clone(),
                Err(err) => {
                    last_error = err.to_string();
                    tokio::time::sleep(BACKOFF.min(remaining)).await;
                    target = self.selector.current().await;
                    continue;
                }
            };
            let timeout = self.attempt_timeout.min(remaining);
            match self.client.call::<T>(request(&url).timeout(timeout)).await {
                Ok(value) => return Ok(value),
                Err(err) if err.is_unreachable() => {
                    tracing::warn!(replica = id, %err, attempt, "selected replica did not answer; selecting again");
                    last_error = err.to_string();
                    target = self.selector.failed(id).await;
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
