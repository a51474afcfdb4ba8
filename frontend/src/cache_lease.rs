//! The front-end's side of the cache-lease protocol ([`api::cache_lease`]): keeps the cache's
//! lease from the catalog alive. The catalog's side is `catalog/src/cache_lease.rs`.
//!
//! Every third of a lease the front-end registers its invalidation URL with the catalog
//! (`POST /frontends`). The lease is counted from the moment the request was *sent*, so the
//! front-end's idea of it always ends before the catalog's. A `fresh` grant means the catalog
//! did not consider us registered (it restarted, or revoked us after a failed push): we may have
//! missed invalidations, so the cache is emptied before the new lease is used.
//!
//! The front-end echoes the epoch of the last fresh grant it acted on ([`Renewal`]); the
//! catalog keeps answering `fresh` until it hears it, so a fresh answer lost on the way is
//! repeated rather than turned into a plain renewal of a cache that missed invalidations.

use std::sync::Arc;
use std::time::Duration;

use api::cache_lease::{LeaseGrant, LeaseRequest};
use api::catalog::CatalogClient;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cache::ProductCache;

/// What the front-end carries from one renewal to the next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Renewal {
    /// The epoch of the last fresh grant the cache was emptied for.
    epoch: Option<u64>,
}

impl Renewal {
    /// The next renewal's body.
    pub fn request(&self, url: &str) -> LeaseRequest {
        LeaseRequest {
            url: url.to_string(),
            epoch: self.epoch,
        }
    }

    /// Applies `grant` (requested at `sent`) to `cache`, then remembers its epoch: only a
    /// cache that has acted on a fresh grant echoes it.
    pub fn granted(&mut self, cache: &ProductCache, grant: &LeaseGrant, sent: Instant) {
        let lease = Duration::from_millis(grant.lease_ms);
        cache.apply_grant(grant.fresh, &grant.in_flight, sent + lease);
        self.epoch = Some(grant.epoch);
    }
}

/// Renews the lease until `shutdown`.
pub async fn renew_loop(
    cache: Arc<ProductCache>,
    catalog: CatalogClient,
    public_url: reqwest::Url,
    shutdown: CancellationToken,
) {
    let url = public_url.as_str().trim_end_matches('/').to_string();
    let mut renewal = Renewal::default();
    let mut failing = false;
    loop {
        let period;
        let sent = Instant::now();
        match catalog.renew_lease(&renewal.request(&url)).await {
            Ok(grant) => {
                renewal.granted(&cache, &grant, sent);
                if grant.fresh {
                    tracing::info!(
                        lease_ms = grant.lease_ms,
                        epoch = grant.epoch,
                        "cache lease granted; cache emptied"
                    );
                } else if failing {
                    tracing::info!("cache lease renewed again");
                }
                failing = false;
                period = (Duration::from_millis(grant.lease_ms) / 3).max(Duration::from_millis(10));
            }
            Err(err) => {
                if !failing {
                    tracing::warn!(%err, "cannot renew the cache lease; the cache stays unused until it can");
                }
                failing = true;
                period = Duration::from_millis(200);
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(period) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::CacheMetrics;
    use bytes::Bytes;

    fn grant(fresh: bool, epoch: u64) -> LeaseGrant {
        LeaseGrant {
            lease_ms: 3_600_000,
            fresh,
            epoch,
            in_flight: Vec::new(),
        }
    }

    #[test]
    fn the_epoch_is_echoed_only_after_the_cache_acted_on_its_grant() {
        let cache = ProductCache::new(4, CacheMetrics::default());
        let mut renewal = Renewal::default();
        assert_eq!(renewal.request("http://fe").epoch, None);
        // A fresh grant whose answer is lost changes nothing here: the next renewal still
        // echoes nothing, and the catalog answers fresh again.
        assert_eq!(renewal.request("http://fe").epoch, None);
        renewal.granted(&cache, &grant(true, 5), Instant::now());
        assert_eq!(renewal.request("http://fe").epoch, Some(5));
        assert!(cache.fill(cache.ticket(), "a", 1, Bytes::new()));
        // A plain renewal keeps the cache; a fresh one (after a revocation) empties it.
        renewal.granted(&cache, &grant(false, 5), Instant::now());
        assert_eq!(cache.len(), 1);
        renewal.granted(&cache, &grant(true, 6), Instant::now());
        assert!(cache.is_empty());
        assert_eq!(renewal.request("http://fe").epoch, Some(6));
    }
}
