//! `FrontendApi`: what a shopper does with a front-end (order, look an order up, read a toy),
//! for the in-process and the process stores alike. Cheap to clone into spawned tasks.

use api::catalog::Product;
use api::client::{CallError, ServiceClient, endpoint};
use api::order::{OrderPlaced, OrderRecord};

#[derive(Clone)]
pub struct FrontendApi {
    http: ServiceClient,
    base: reqwest::Url,
}

impl FrontendApi {
    pub fn new(http: ServiceClient, base_url: &str) -> Self {
        let base = reqwest::Url::parse(base_url).expect("a front-end URL");
        Self { http, base }
    }

    /// `POST /orders`, with an `Idempotency-Key` if given.
    pub async fn place(
        &self,
        name: &str,
        quantity: u32,
        key: Option<&str>,
    ) -> Result<OrderPlaced, CallError> {
        let url = endpoint(&self.base, &["orders"]);
        let mut request = self
            .http
            .post(url.as_str())
            .json(&serde_json::json!({"name": name, "quantity": quantity}));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        self.http.call(request).await
    }

    /// `GET /orders/{number}`.
    pub async fn lookup(&self, number: u64) -> Result<OrderRecord, CallError> {
        let url = endpoint(&self.base, &["orders", &number.to_string()]);
        self.http.call(self.http.get(url.as_str())).await
    }

    /// `GET /products/{name}` (through the front-end's cache).
    pub async fn product(&self, name: &str) -> Result<Product, CallError> {
        let url = endpoint(&self.base, &["products", name]);
        self.http.call(self.http.get(url.as_str())).await
    }
}
