//! Which front-ends cache toys, and the invalidation push to them.
//!
//! A front-end may serve its cache only while it holds a lease from the catalog; it renews the
//! lease every fraction of its length. In return the catalog promises never to acknowledge a
//! stock change until every front-end holding a live lease has either received the
//! invalidation or lost its lease. A front-end that cannot be reached is revoked: the catalog
//! forgets it, waits until the lease it last granted has run out (from then on the front-end
//! bypasses its cache), and only then acknowledges. When the front-end comes back, its next
//! renewal is answered with `fresh: true`, and it empties its cache before caching again.

use std::collections::HashMap;
use std::time::Duration;

use api::catalog::{Invalidation, LeaseGrant, StaleToy};
use api::client::ServiceClient;
use futures::future::join_all;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use tokio::time::Instant;

/// Leases granted to front-ends, keyed by the URL invalidations are pushed to.
pub struct FrontendLeases {
    lease: Duration,
    expiry: Mutex<HashMap<String, Instant>>,
    client: ServiceClient,
    pushed: Counter,
    revoked: Counter,
}

impl FrontendLeases {
    pub fn new(lease: Duration, client: ServiceClient, pushed: Counter, revoked: Counter) -> Self {
        Self {
            lease,
            expiry: Mutex::new(HashMap::new()),
            client,
            pushed,
            revoked,
        }
    }

    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Grants or renews `url`'s lease.
    pub fn grant(&self, url: &str) -> LeaseGrant {
        let now = Instant::now();
        let mut expiry = self.expiry.lock();
        let fresh = expiry.get(url).is_none_or(|until| *until <= now);
        expiry.insert(url.to_string(), now + self.lease);
        if fresh {
            tracing::info!(%url, "front-end registered for invalidations");
        }
        LeaseGrant {
            lease_ms: self.lease.as_millis() as u64,
            fresh,
        }
    }

    /// Number of front-ends holding a live lease.
    pub fn live(&self) -> usize {
        let now = Instant::now();
        self.expiry
            .lock()
            .values()
            .filter(|until| **until > now)
            .count()
    }

    /// Delivers `toys` to every front-end with a live lease. Returns once each one has either
    /// acknowledged the invalidation or been revoked and its lease has run out.
    pub async fn push(&self, toys: &[StaleToy]) {
        if toys.is_empty() {
            return;
        }
        let now = Instant::now();
        let targets: Vec<String> = {
            let mut expiry = self.expiry.lock();
            expiry.retain(|_, until| *until > now);
            expiry.keys().cloned().collect()
        };
        let body = Invalidation {
            toys: toys.to_vec(),
        };
        join_all(targets.iter().map(|url| self.push_one(url, &body))).await;
    }

    async fn push_one(&self, url: &str, body: &Invalidation) {
        let endpoint = format!("{url}/invalidate");
        let mut last_error = None;
        for attempt in 0..2 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            match self
                .client
                .call::<serde_json::Value>(self.client.post(&endpoint).json(body))
                .await
            {
                Ok(_) => {
                    self.pushed.inc();
                    return;
                }
                Err(err) => last_error = Some(err),
            }
        }
        // Could not deliver: revoke the lease and wait until the front-end stops trusting its
        // cache. Removing the entry first means a renewal that races with us is answered
        // `fresh`, which makes the front-end empty its cache.
        let until = self.expiry.lock().remove(url);
        self.revoked.inc();
        tracing::warn!(
            %url,
            error = %last_error.map(|e| e.to_string()).unwrap_or_default(),
            "cannot deliver an invalidation; revoking the front-end's lease"
        );
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }
}
