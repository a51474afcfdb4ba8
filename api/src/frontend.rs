//! The front-end's HTTP contract: the store's public API (routes, the order body, the
//! `Idempotency-Key` header), its internal invalidation endpoint, and [`FrontendClient`], the
//! typed client the load client, the benchmarks, the catalog and the tests call it with.

use serde::{Deserialize, Serialize};

use crate::cache_lease::Invalidation;
use crate::catalog::Product;
use crate::client::{CallError, ServiceClient, route_url};
use crate::order::{OrderPlaced, OrderRecord};
use crate::status::FrontendStatus;

/// The front-end's routes. Its router and every caller use these templates.
pub mod routes {
    /// `GET`: the whole catalog.
    pub const PRODUCTS: &str = "/products";
    /// `GET`: one toy, from the cache when possible.
    pub const PRODUCT: &str = "/products/{name}";
    /// `POST`: place an order.
    pub const ORDERS: &str = "/orders";
    /// `GET`: one order.
    pub const ORDER: &str = "/orders/{number}";
    /// `GET`: the selected replica and the cache's figures.
    pub const STATUS: &str = "/status";
    /// `POST` (internal): the catalog's invalidation push.
    pub const INVALIDATE: &str = "/invalidate";
}

/// The `ETag` of a product answer: the version of the toy's stock it shows (see
/// [`crate::catalog::VersionedProduct`]). A later answer for the same toy with a higher version
/// shows a later stock.
pub fn version_tag(version: u64) -> String {
    format!("\"{version}\"")
}

/// The version an `ETag` made by [`version_tag`] carries.
pub fn parse_version_tag(tag: &str) -> Option<u64> {
    tag.trim().trim_matches('"').parse().ok()
}

/// Header a client may set on `POST /orders` so that retries return the same order.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// `POST /orders` on the front-end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    pub name: String,
    pub quantity: i64,
}

/// What one request to the front-end produced.
pub type Reply<T> = Result<T, CallError>;

/// The front-end as a shopper (and the catalog) calls it: one method per endpoint.
///
/// Each call is a single HTTP request; callers decide what to retry. A failure is a
/// [`CallError`]: no answer, an enveloped refusal (with its status), or an answer that is not
/// the envelope.
#[derive(Debug, Clone)]
pub struct FrontendClient {
    http: ServiceClient,
    base: reqwest::Url,
}

impl FrontendClient {
    pub fn new(base: reqwest::Url, http: ServiceClient) -> Self {
        Self { http, base }
    }

    pub fn base(&self) -> &reqwest::Url {
        &self.base
    }

    /// `GET /products`: the whole catalog.
    pub async fn products(&self) -> Reply<Vec<Product>> {
        self.http.get_json(&self.url(routes::PRODUCTS, &[])).await
    }

    /// `GET /products/{name}`, the name percent-encoded as one path segment.
    pub async fn product(&self, name: &str) -> Reply<Product> {
        self.http
            .get_json(&self.url(routes::PRODUCT, &[name]))
            .await
    }

    /// `GET /products/{name}` and the version of the toy's stock it shows (its `ETag`).
    pub async fn product_version(&self, name: &str) -> Reply<(Product, Option<u64>)> {
        let request = self.http.get(self.url(routes::PRODUCT, &[name]).as_str());
        let (product, headers) = self.http.call_with_headers(request).await?;
        let version = headers
            .get(reqwest::header::ETAG)
            .and_then(|tag| tag.to_str().ok())
            .and_then(parse_version_tag);
        Ok((product, version))
    }

    /// `POST /orders`. With an idempotency key, sending it again cannot buy twice; without
    /// one, every request is a new order.
    pub async fn order(&self, name: &str, quantity: u32, key: Option<&str>) -> Reply<OrderPlaced> {
        let body = OrderRequest {
            name: name.to_string(),
            quantity: i64::from(quantity),
        };
        let mut request = self
            .http
            .post(self.url(routes::ORDERS, &[]).as_str())
            .json(&body);
        if let Some(key) = key {
            request = request.header(IDEMPOTENCY_KEY, key);
        }
        self.http.call(request).await
    }

    /// `GET /orders/{number}`.
    pub async fn lookup(&self, number: u64) -> Reply<OrderRecord> {
        let number = number.to_string();
        self.http
            .get_json(&self.url(routes::ORDER, &[&number]))
            .await
    }

    /// `GET /status`.
    pub async fn status(&self) -> Reply<FrontendStatus> {
        self.http.get_json(&self.url(routes::STATUS, &[])).await
    }

    /// `POST /invalidate` (internal): what the catalog pushes.
    pub async fn invalidate(&self, invalidation: &Invalidation) -> Reply<serde_json::Value> {
        self.http
            .post_json(&self.url(routes::INVALIDATE, &[]), invalidation)
            .await
    }

    /// The URL of a route as people read it, for error messages.
    pub fn url(&self, template: &str, params: &[&str]) -> reqwest::Url {
        route_url(&self.base, template, params)
    }
}
