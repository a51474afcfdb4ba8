//! The front-end's side of the cache-lease protocol ([`api::cache_lease`]): keeps the cache's
//! lease from the catalog alive. The catalog's side is `catalog/src/cache_lease.rs`.
//!
//! Every third of a lease the front-end registers its invalidation URL with the catalog
//! (`POST /frontends`). The lease is counted from the moment the request was *sent*, so the
//! front-end's idea of it always ends before the catalog's. A `fresh` grant means the catalog
//! did not consider us registered (it restarted, or revoked us after a failed push): we may have
//! missed invalidations, so the cache is emptied before the new lease is used.

use std::sync::Arc;
use std::time::Duration;

use api::cache_lease::LeaseRequest;
use api::catalog::CatalogClient;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cache::ProductCache;

/// Renews the lease until `shutdown`.
pub async fn renew_loop(
    cache: Arc<ProductCache>,
    catalog: CatalogClient,
    public_url: reqwest::Url,
    shutdown: CancellationToken,
) {
    let body = LeaseRequest {
        url: public_url.as_str().trim_end_matches('/').to_string(),
    };
    let mut failing = false;
    loop {
        let period;
        let sent = Instant::now();
        match catalog.renew_lease(&body).await {
            Ok(grant) => {
                if grant.fresh {
                    cache.clear();
                    tracing::info!(
                        lease_ms = grant.lease_ms,
                        "cache lease granted; cache emptied"
                    );
                } else if failing {
                    tracing::info!("cache lease renewed again");
                }
                failing = false;
                let lease = Duration::from_millis(grant.lease_ms);
                cache.extend_lease(sent + lease);
                period = (lease / 3).max(Duration::from_millis(10));
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
