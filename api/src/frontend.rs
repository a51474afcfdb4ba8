//! The front-end's HTTP contract: the store's public API (routes, the order body, the
//! `Idempotency-Key` header), the pages it serves to browsers and the body of the dashboard's
//! data, its internal invalidation endpoint, and [`FrontendClient`], the typed client the load
//! client, the benchmarks, the catalog and the tests call it with.

use serde::{Deserialize, Serialize};

use crate::cache_lease::Invalidation;
use crate::catalog::Product;
use crate::client::{CallError, ServiceClient};
use crate::order::{OrderPlaced, OrderRecord, ReplicaClient};
use crate::status::{FrontendStatus, NodeStatus};
use crate::url::route_url;

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
    /// `GET`: the storefront page (HTML).
    pub const STOREFRONT: &str = "/";
    /// `GET`: the live cluster dashboard page (HTML).
    pub const DASHBOARD: &str = "/dashboard";
    /// `GET`: what the dashboard shows, as [`super::DashboardData`].
    pub const DASHBOARD_DATA: &str = "/dashboard/data";
    /// `GET`: the pages' scripts and style sheet, embedded in the binary.
    pub const ASSET: &str = "/assets/{file}";
    /// `GET`: the public API as an OpenAPI 3.1 document.
    pub const OPENAPI: &str = "/openapi.json";
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    /// The toy, exactly as `GET /products` names it (case-sensitive). The store accepts 1 to
    /// 256 bytes without `/` or control characters, other than `.` and `..`
    /// ([`crate::order::valid_toy_name`]); the schema's 64 characters always fit in 256 bytes.
    /// The pattern says "no `/` or control character, and either a character other than `.` or
    /// at least three": every name but `.` and `..` (JSON Schema has no "not" in a pattern).
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^(?:[^/\u0000-\u001f\u007f-\u009f]*[^./\u0000-\u001f\u007f-\u009f][^/\u0000-\u001f\u007f-\u009f]*|[^/\u0000-\u001f\u007f-\u009f]{3,})$",
        example = "Tux"
    )]
    pub name: String,
    /// Units to buy. Signed on the wire so that a negative number is a clear 400, not a
    /// decoding error; the bounds are the ones the front-end enforces
    /// ([`crate::order::MAX_ORDER_QUANTITY`]).
    #[schema(minimum = 1, maximum = 1_000_000, example = 1)]
    pub quantity: i64,
}

/// How far back the dashboard's order series and events reach.
pub const DASHBOARD_WINDOW_SECS: u64 = 120;

/// `GET /dashboard/data`: the cluster as the front-end sees it, for the dashboard page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DashboardData {
    /// The front-end's clock (Unix milliseconds) when it gathered this: the time axis of
    /// `orders` and `events`, so the page never mixes its own clock with the server's.
    pub now_ms: u64,
    /// What `GET /status` answers: the selected replica, reselections, the cache.
    pub frontend: FrontendStatus,
    /// The replica that reports itself Raft leader in the highest term, if any answered so.
    pub leader: Option<u64>,
    /// Every replica in id order.
    pub replicas: Vec<ReplicaView>,
    pub catalog: CatalogView,
    /// `POST /orders` answers per completed second, oldest first, the last
    /// [`DASHBOARD_WINDOW_SECS`] seconds; seconds without orders are present with zeros.
    pub orders: Vec<OrderSecond>,
    /// Leader changes and reselections seen in that window, oldest first.
    pub events: Vec<DashboardEvent>,
}

/// One order replica on the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaView {
    pub id: u64,
    /// Its `GET /status`, when it answered.
    pub status: Option<NodeStatus>,
    /// Why there is no status: `no answer`, or the status it answered with.
    pub error: Option<String>,
}

impl ReplicaView {
    /// Asks `replica` (id `id`) for its `/status`; `describe` says why there is none.
    pub async fn ask(
        id: u64,
        replica: &ReplicaClient,
        describe: impl Fn(&CallError) -> String,
    ) -> Self {
        match replica.status().await {
            Ok(status) => Self {
                id,
                status: Some(status),
                error: None,
            },
            Err(err) => Self {
                id,
                status: None,
                error: Some(describe(&err)),
            },
        }
    }
}

/// The replica that says it leads in the highest term, and that term. A deposed leader that
/// has not heard of the new term yet loses to the new one. The dashboard and `toystore-lab`
/// name the leader by this rule.
pub fn claimed_leader(replicas: &[ReplicaView]) -> Option<(u64, u64)> {
    replicas
        .iter()
        .filter_map(|replica| replica.status.as_ref())
        .filter(|status| status.role == "leader")
        .map(|status: &NodeStatus| (status.id, status.term))
        .max_by_key(|&(id, term)| (term, id))
}

/// The catalog on the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogView {
    /// `ok` when its `/health` answered 200, else why not.
    pub health: String,
    /// Toys it lists, and the units in stock over all of them, when it answered.
    pub toys: Option<u64>,
    pub units: Option<u64>,
}

/// `POST /orders` answers of one second, as the front-end timed them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderSecond {
    /// Start of the second, Unix milliseconds.
    pub start_ms: u64,
    /// Orders placed (200).
    pub placed: u64,
    /// Orders refused (4xx: out of stock, unknown toy, bad input).
    pub refused: u64,
    /// Orders the store could not serve (5xx, after the front-end's retries).
    pub failed: u64,
    /// Latency of the placed orders, median and 99th percentile, in milliseconds (a
    /// histogram's bucket bound: at most 20 % high); absent when none was placed.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Something that happened to the cluster, marked on the dashboard's chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashboardEvent {
    /// When the front-end noticed it, Unix milliseconds.
    pub at_ms: u64,
    pub kind: EventKind,
    /// The new leader (`leader`; none: no replica leads) or the newly selected replica
    /// (`reselection`).
    pub replica: Option<u64>,
    /// The new leader's term.
    pub term: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The Raft leader changed.
    Leader,
    /// The front-end selected another replica.
    Reselection,
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

    /// `GET /dashboard/data`.
    pub async fn dashboard(&self) -> Reply<DashboardData> {
        self.http
            .get_json(&self.url(routes::DASHBOARD_DATA, &[]))
            .await
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
