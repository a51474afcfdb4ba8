//! The cache-lease protocol between the catalog (which grants leases and pushes
//! invalidations) and the front-ends (which hold leases and cache toys under them).
//!
//! A front-end registers with `POST /frontends` on the catalog ([`LeaseRequest`]) every third
//! of a lease and may serve its cache while the lease it was granted ([`LeaseGrant`]) lasts. In
//! return, the catalog acknowledges no stock change before every front-end holding a live
//! lease has received the [`Invalidation`] (`POST /invalidate` on the front-end) or lost its
//! lease. The catalog's side is `catalog/src/cache_lease.rs`, the front-end's
//! `frontend/src/cache_lease.rs`.
//!
//! Three details close the corners between a grant and a change:
//! - a `fresh` grant carries an `epoch` the front-end echoes in its renewals once it has
//!   emptied its cache; until the catalog hears it, every grant is fresh again, so a lost
//!   answer cannot bring back a cache that missed invalidations;
//! - a grant carries the changes `in_flight` (pushed to the front-ends registered before it,
//!   not yet visible to reads), so a front-end registering meanwhile refuses fills older than
//!   them;
//! - a restarted catalog sends every front-end it knows of an [`Invalidation`] with `reset`:
//!   the front-end empties its cache and stops using its lease until it registers again.

use serde::{Deserialize, Serialize};

/// `POST /frontends` on the catalog (internal): a front-end asks to receive invalidations.
///
/// Sent at start and then periodically; each call renews the front-end's cache lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRequest {
    /// Base URL the catalog pushes invalidations to, e.g. `http://127.0.0.1:8000`.
    pub url: String,
    /// The `epoch` of the last fresh grant the front-end acted on (emptied its cache for), if
    /// any. The catalog answers `fresh` until this names the registration it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
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
    /// cache before using the lease: it may have missed invalidations. Also true while the
    /// request does not echo this grant's `epoch`: an earlier fresh answer may have been lost.
    pub fresh: bool,
    /// Names the catalog's registration of this front-end; echo it in [`LeaseRequest::epoch`]
    /// after acting on a fresh grant.
    #[serde(default)]
    pub epoch: u64,
    /// Stock changes the catalog is committing right now: pushed to the front-ends registered
    /// before this grant, not yet visible to reads. The front-end must treat each as an
    /// invalidation (refuse to cache an older version), since its push will not come to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_flight: Vec<StaleToy>,
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
    /// The catalog restarted: empty the whole cache and stop using the lease until the catalog
    /// grants a new one (its predecessor's leases and invalidations are gone with it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
}
