//! The catalog's side of the cache-lease protocol ([`api::cache_lease`]): which front-ends
//! cache toys, and the invalidation push to them. The front-end's side is
//! `frontend/src/cache_lease.rs`.
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

use api::cache_lease::{Invalidation, LeaseGrant, StaleToy};
use api::client::ServiceClient;
use api::frontend::FrontendClient;
use futures::future::join_all;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use tokio::time::Instant;

/// A front-end holding (or having held) a lease.
struct Holder {
    until: Instant,
    frontend: FrontendClient,
}

/// Leases granted to front-ends, keyed by the URL invalidations are pushed to.
pub struct CacheLeases {
    lease: Duration,
    holders: Mutex<HashMap<String, Holder>>,
    client: ServiceClient,
    pushed: Counter,
    revoked: Counter,
}

impl CacheLeases {
    pub fn new(lease: Duration, client: ServiceClient, pushed: Counter, revoked: Counter) -> Self {
        Self {
            lease,
            holders: Mutex::new(HashMap::new()),
            client,
            pushed,
            revoked,
        }
    }

    /// Grants or renews the lease of the front-end at `url`.
    pub fn grant(&self, url: reqwest::Url) -> LeaseGrant {
        let now = Instant::now();
        let key = url.as_str().to_string();
        let mut holders = self.holders.lock();
        let fresh = holders.get(&key).is_none_or(|holder| holder.until <= now);
        let frontend = FrontendClient::new(url, self.client.clone());
        holders.insert(
            key.clone(),
            Holder {
                until: now + self.lease,
                frontend,
            },
        );
        if fresh {
            tracing::info!(url = %key, "front-end registered for invalidations");
        }
        LeaseGrant {
            lease_ms: self.lease.as_millis() as u64,
            fresh,
        }
    }

    /// Number of front-ends holding a live lease.
    pub fn live(&self) -> usize {
        let now = Instant::now();
        self.holders
            .lock()
            .values()
            .filter(|holder| holder.until > now)
            .count()
    }

    /// Delivers `toys` to every front-end with a live lease. Returns once each one has either
    /// acknowledged the invalidation or been revoked and its lease has run out.
    pub async fn push(&self, toys: &[StaleToy]) {
        if toys.is_empty() {
            return;
        }
        let now = Instant::now();
        let targets: Vec<(String, FrontendClient)> = {
            let mut holders = self.holders.lock();
            holders.retain(|_, holder| holder.until > now);
            holders
                .iter()
                .map(|(key, holder)| (key.clone(), holder.frontend.clone()))
                .collect()
        };
        let body = Invalidation {
            toys: toys.to_vec(),
        };
        join_all(
            targets
                .iter()
                .map(|(key, frontend)| self.push_one(key, frontend, &body)),
        )
        .await;
    }

    async fn push_one(&self, key: &str, frontend: &FrontendClient, body: &Invalidation) {
        let mut last_error = None;
        for attempt in 0..2 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            match frontend.invalidate(body).await {
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
        let until = self.holders.lock().remove(key).map(|holder| holder.until);
        self.revoked.inc();
        tracing::warn!(
            url = %key,
            error = %last_error.map(|e| e.to_string()).unwrap_or_default(),
            "cannot deliver an invalidation; revoking the front-end's lease"
        );
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }
}
