//! The catalog's HTTP contract: its routes, the bodies of its endpoints, and
//! [`CatalogClient`], the typed client the front-end, the order leader and the tests call it
//! with. The cache-lease part of the contract (registration and invalidations) is in
//! [`crate::cache_lease`].

use serde::{Deserialize, Serialize};

use crate::cache_lease::{LeaseGrant, LeaseRequest};
use crate::client::{CallError, ServiceClient, route_url};

/// The catalog's routes. The catalog's router and every caller use these templates.
pub mod routes {
    /// `GET`: every toy, with versions.
    pub const PRODUCTS: &str = "/products";
    /// `GET`: one toy, with its version.
    pub const PRODUCT: &str = "/products/{name}";
    /// `POST` (internal): one idempotent buy.
    pub const BUY: &str = "/buy";
    /// `POST` (internal): several buys in one call.
    pub const BUYS: &str = "/buys";
    /// `POST` (internal): a front-end registers for invalidations and renews its cache lease.
    pub const FRONTENDS: &str = "/frontends";
}

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

/// The catalog as its callers see it.
#[derive(Debug, Clone)]
pub struct CatalogClient {
    http: ServiceClient,
    base: reqwest::Url,
}

impl CatalogClient {
    pub fn new(base: reqwest::Url, http: ServiceClient) -> Self {
        Self { http, base }
    }

    pub fn base(&self) -> &reqwest::Url {
        &self.base
    }

    /// `GET /products`.
    pub async fn products(&self) -> Result<Vec<VersionedProduct>, CallError> {
        self.http
            .get_json(&route_url(&self.base, routes::PRODUCTS, &[]))
            .await
    }

    /// `GET /products/{name}`.
    pub async fn product(&self, name: &str) -> Result<VersionedProduct, CallError> {
        self.http
            .get_json(&route_url(&self.base, routes::PRODUCT, &[name]))
            .await
    }

    /// `POST /buy`.
    pub async fn buy(&self, request: &BuyRequest) -> Result<BuyOutcome, CallError> {
        self.http
            .post_json(&route_url(&self.base, routes::BUY, &[]), request)
            .await
    }

    /// `POST /buys`: one answer per buy, in order.
    pub async fn buys(&self, batch: &BuyBatch) -> Result<BuyAnswers, CallError> {
        self.http
            .post_json(&route_url(&self.base, routes::BUYS, &[]), batch)
            .await
    }

    /// `POST /frontends`: registers a front-end and renews its cache lease.
    pub async fn renew_lease(&self, request: &LeaseRequest) -> Result<LeaseGrant, CallError> {
        self.http
            .post_json(&route_url(&self.base, routes::FRONTENDS, &[]), request)
            .await
    }
}
