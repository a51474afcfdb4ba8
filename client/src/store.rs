//! The front-end's public API as a shopper calls it: one method per endpoint. The load
//! client, the benchmarks and the system tests all reach the front-end through it.
//!
//! Each call is a single HTTP request (no retries here; the session decides what to retry),
//! made with the project's shared [`ServiceClient`]. A failure is a [`CallError`]: no answer,
//! an enveloped refusal (with its status), or an answer that is not the envelope. The report
//! counts a refusal such as "out of stock" very differently from a failure.

use std::time::Duration;

use api::catalog::Product;
use api::client::{CallError, ServiceClient, endpoint};
use api::order::{IDEMPOTENCY_KEY, OrderPlaced, OrderRecord, OrderRequest};
use reqwest::Url;

/// What one request produced.
pub type Reply<T> = Result<T, CallError>;

/// The front-end, reached through one pooled HTTP client shared by every session.
#[derive(Debug, Clone)]
pub struct Store {
    http: ServiceClient,
    base: Url,
}

impl Store {
    /// `timeout` bounds each whole request.
    pub fn new(base: Url, timeout: Duration) -> Self {
        Self::with_client(base, ServiceClient::new(timeout, None))
    }

    /// The front-end at `base`, reached through an existing connection pool.
    pub fn with_client(base: Url, http: ServiceClient) -> Self {
        Self { http, base }
    }

    /// `GET /products`: the whole catalog.
    pub async fn products(&self) -> Reply<Vec<Product>> {
        self.http
            .call(self.http.get(self.url(&["products"]).as_str()))
            .await
    }

    /// `GET /products/{name}`, the name percent-encoded as one path segment.
    pub async fn product(&self, name: &str) -> Reply<Product> {
        self.http
            .call(self.http.get(self.url(&["products", name]).as_str()))
            .await
    }

    /// `POST /orders`. With an idempotency key, sending it again cannot buy twice; without
    /// one, every request is a new order.
    pub async fn order(&self, name: &str, quantity: u32, key: Option<&str>) -> Reply<OrderPlaced> {
        let body = OrderRequest {
            name: name.to_string(),
            quantity: i64::from(quantity),
        };
        let mut request = self.http.post(self.url(&["orders"]).as_str()).json(&body);
        if let Some(key) = key {
            request = request.header(IDEMPOTENCY_KEY, key);
        }
        self.http.call(request).await
    }

    /// `GET /orders/{number}`.
    pub async fn lookup(&self, number: u64) -> Reply<OrderRecord> {
        let number = number.to_string();
        self.http
            .call(self.http.get(self.url(&["orders", &number]).as_str()))
            .await
    }

    /// The URL of `GET /products` as people read it, for error messages.
    pub fn products_url(&self) -> String {
        self.url(&["products"]).to_string()
    }

    fn url(&self, segments: &[&str]) -> Url {
        endpoint(&self.base, segments)
    }
}
