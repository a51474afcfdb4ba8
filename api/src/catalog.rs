//! Bodies of the catalog's endpoints and of the invalidations it pushes to front-ends.

use serde::{Deserialize, Serialize};

/// A toy as the public API shows it (`GET /products/{name}` on the front-end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub name: String,
    pub price: f64,
    pub quantity: u32,
}

/// A toy as the catalog serves it to front-ends: the public fields plus the toy's version.
///
/// `version` grows by one on every change of the toy's stock. A front-end uses it to refuse a
/// cache fill that is older than an invalidation it has already seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionedProduct {
    pub name: String,
    pub price: f64,
    pub quantity: u32,
    pub version: u64,
}

impl VersionedProduct {
    pub fn public(&self) -> Product {
        Product {
            name: self.name.clone(),
            price: self.price,
            quantity: self.quantity,
        }
    }
}

/// `POST /buy` on the catalog (internal). Idempotent by `request_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuyRequest {
    pub request_id: String,
    pub name: String,
    pub quantity: u32,
}

/// `POST /buys` on the catalog (internal): several buys in one call, each handled exactly as
/// `POST /buy` would handle it alone. The order leader batches concurrent orders' buys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuyBatch {
    pub buys: Vec<BuyRequest>,
}

/// Most buys one [`BuyBatch`] may carry.
pub const MAX_BUY_BATCH: usize = 1024;

/// Largest `POST /buys` body: [`MAX_BUY_BATCH`] buys of generous size.
pub const MAX_BUY_BATCH_BODY: usize = MAX_BUY_BATCH * 512;

/// The answer to a [`BuyBatch`]: one result per buy, in order.
pub type BuyAnswers = Vec<Result<BuyOutcome, crate::ErrorDetail>>;

/// The catalog's answer to a buy. The same request id always gets the same outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum BuyOutcome {
    /// The stock was decremented; `remaining` is what is left after this buy.
    Bought { remaining: u32, version: u64 },
    /// Not enough stock; nothing changed.
    OutOfStock { available: u32 },
    /// No toy of that name; nothing changed.
    UnknownProduct,
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
