//! The cache-lease protocol between the catalog (which grants leases and pushes
//! invalidations) and the front-ends (which hold leases and cache toys under them).
//!
//! A front-end registers with `POST /frontends` on the catalog ([`LeaseRequest`]) every third
//! of a lease and may serve its cache while the lease it was granted ([`LeaseGrant`]) lasts. In
//! return, the catalog acknowledges no stock change before every front-end holding a live
//! lease has received the [`Invalidation`] (`POST /invalidate` on the front-end) or lost its
//! lease. The catalog's side is `catalog/src/cache_lease.rs`, the front-end's
//! `frontend/src/cache_lease.rs`.

use serde::{Deserialize, Serialize};

/// `POST /frontends` on the catalog (internal): a front-end asks to receive invalidations.
///
/// Sent at start and then periodically; each call renews the front-end's cache lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRequest {
    /// Base URL the catalog pushes invalidations to, e.g. `http://127.0.0.1:8000`.
    pub url: String,
}

/// The catalog's answer to a [`LeaseRequest`].
///
/// Until `lease_ms` after it *sent* the request, the front-end may serve cached entries: the
/// catalog promises not to acknowledge a stock change before either delivering the
/// invalidation or waiting out that lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseGrant {
    pub lease_ms: u64,
    /// True when the catalog did not hold a live lease for this front-end (it is new, the
    /// catalog restarted, or an invalidation to it failed). The front-end must then empty its
    /// cache before using the lease: it may have missed invalidations.
    pub fresh: bool,
}

/// A toy whose cached entry must go, and the version that made it stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleToy {
    pub name: String,
    pub version: u64,
}

/// `POST /invalidate` on a front-end (internal), pushed by the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invalidation {
    pub toys: Vec<StaleToy>,
}
