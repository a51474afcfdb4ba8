//! Keeps the cache's lease from the catalog alive.
//!
//! Every third of a lease the front-end registers its invalidation URL with the catalog
//! (`POST /frontends`). The lease is counted from the moment the request was *sent*, so the
//! front-end's idea of it always ends before the catalog's. A `fresh` grant means the catalog
//! did not consider us registered (it restarted, or revoked us after a failed push): we may have
//! missed invalidations, so the cache is emptied before the new lease is used.

use std::sync::Arc;
use std::time::Duration;

use api::catalog::{LeaseGrant, LeaseRequest};
use api::client::ServiceClient;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cache::ProductCache;

/// Renews the lease until `shutdown`. `first_renewal` fires after the first attempt.
pub async fn renew_loop(
    cache: Arc<ProductCache>,
    client: ServiceClient,
    catalog_url: String,
    public_url: String,
    shutdown: CancellationToken,
) {
    let endpoint = format!("{catalog_url}/frontends");
    let body = LeaseRequest { url: public_url };
    let mut failing = false;
    loop {
        let period;
        let sent = Instant::now();
        let renewed: Result<LeaseGrant, _> = client.call(client.post(&endpoint).json(&body)).await;
        match renewed {
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
