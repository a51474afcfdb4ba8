//! The front-end's public API as the client calls it: one method per endpoint.
//!
//! Each call is a single HTTP request (no retries here; the session decides what to retry).
//! Answers are sorted into a value, a business refusal (a 4xx with the error envelope), or a
//! failure, because the report counts these three very differently.

use std::time::Duration;

use api::catalog::Product;
use api::envelope::{Data, ErrorBody};
use api::order::{IDEMPOTENCY_KEY, OrderPlaced, OrderRecord, OrderRequest};
use reqwest::Url;
use serde::de::DeserializeOwned;

use crate::error::ClientError;

/// A request that did not produce a `data` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestFailure {
    /// No HTTP answer: connection refused or reset, or the deadline passed.
    Transport(String),
    /// An answer with a non-2xx status; `message` is the envelope's (or the raw body).
    Status { status: u16, message: String },
    /// A 2xx answer whose body is not the expected envelope.
    Protocol { status: u16, message: String },
}

impl RequestFailure {
    /// The HTTP status, or 0 when there was no answer (as the timeline records it).
    pub fn status(&self) -> u16 {
        match self {
            Self::Transport(_) => 0,
            Self::Status { status, .. } | Self::Protocol { status, .. } => *status,
        }
    }

    /// Worth sending again: the store may not have seen it, or was briefly unable to answer.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Status { status, .. } => *status >= 500,
            Self::Protocol { .. } => false,
        }
    }

    /// The 400 the store answers when another session bought the last of a toy: a normal
    /// outcome under concurrency, not an error.
    pub fn is_out_of_stock(&self) -> bool {
        matches!(self, Self::Status { status: 400, message } if api::order::is_out_of_stock(message))
    }

    /// The 404 of a lookup for an order the store does not have.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Status { status: 404, .. })
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Transport(message)
            | Self::Status { message, .. }
            | Self::Protocol { message, .. } => message,
        }
    }
}

impl std::fmt::Display for RequestFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Transport(message) => write!(f, "no answer: {message}"),
            Self::Status { status, message } => write!(f, "{status}: {message}"),
            Self::Protocol { status, message } => write!(f, "{status} with a bad body: {message}"),
        }
    }
}

/// A `data` value and the status it came with.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer<T> {
    pub status: u16,
    pub data: T,
}

pub type Reply<T> = Result<Answer<T>, RequestFailure>;

/// The front-end, reached through one pooled HTTP client shared by every session.
#[derive(Debug, Clone)]
pub struct Store {
    http: reqwest::Client,
    base: Url,
}

impl Store {
    /// `timeout` bounds each whole request; `pool` is how many idle connections to keep (one
    /// per session avoids reconnecting under load).
    pub fn new(base: Url, timeout: Duration, pool: usize) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .tcp_nodelay(true)
            .pool_max_idle_per_host(pool)
            // The public API never redirects; a redirect would be a bug worth seeing.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| ClientError::HttpClient(error_chain(&err)))?;
        Ok(Self { http, base })
    }

    /// `GET /products`: the whole catalog.
    pub async fn products(&self) -> Reply<Vec<Product>> {
        self.send(self.http.get(self.url(&["products"]))).await
    }

    /// `GET /products/{name}`, the name percent-encoded as one path segment.
    pub async fn product(&self, name: &str) -> Reply<Product> {
        self.send(self.http.get(self.url(&["products", name])))
            .await
    }

    /// `POST /orders` with an idempotency key, so that sending it again cannot buy twice.
    pub async fn order(&self, name: &str, quantity: u32, key: &str) -> Reply<OrderPlaced> {
        let body = OrderRequest {
            name: name.to_string(),
            quantity: i64::from(quantity),
        };
        let request = self
            .http
            .post(self.url(&["orders"]))
            .header(IDEMPOTENCY_KEY, key)
            .json(&body);
        self.send(request).await
    }

    /// `GET /orders/{number}`.
    pub async fn lookup(&self, number: u64) -> Reply<OrderRecord> {
        let number = number.to_string();
        self.send(self.http.get(self.url(&["orders", &number])))
            .await
    }

    /// The URL of `GET /products` as people read it, for error messages.
    pub fn products_url(&self) -> String {
        self.url(&["products"]).to_string()
    }

    /// The base URL with `segments` appended, each percent-encoded (spaces, `/`, `?`, `#`,
    /// `%`), so "Rubik's Cube" reaches the store as one segment.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        // `path_segments_mut` only fails for URLs that cannot have a path (`mailto:`), which
        // the config's http-only check already excludes.
        url
    }

    async fn send<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Reply<T> {
        let response = request
            .send()
            .await
            .map_err(|err| RequestFailure::Transport(error_chain(&err.without_url())))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|err| RequestFailure::Transport(error_chain(&err.without_url())))?;
        decode(status, &body)
    }
}

/// Sorts an HTTP answer into its `data` value or a [`RequestFailure`].
pub fn decode<T: DeserializeOwned>(status: u16, body: &[u8]) -> Reply<T> {
    if (200..300).contains(&status) {
        return serde_json::from_slice::<Data<T>>(body)
            .map(|envelope| Answer {
                status,
                data: envelope.data,
            })
            .map_err(|err| RequestFailure::Protocol {
                status,
                message: err.to_string(),
            });
    }
    let message = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(envelope) => envelope.error.message,
        Err(_) => {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            format!("(no error envelope) {}", text.trim())
        }
    };
    Err(RequestFailure::Status { status, message })
}

/// An error and its causes on one line: reqwest's own message alone is often just "error
/// sending request".
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(base: &str) -> Store {
        let base = Url::parse(base).expect("test URL parses");
        Store::new(base, Duration::from_secs(1), 1).expect("client builds")
    }

    #[test]
    fn toy_names_are_one_encoded_path_segment() {
        let s = store("http://127.0.0.1:8000");
        assert_eq!(
            s.url(&["products", "Rubik's Cube"]).as_str(),
            "http://127.0.0.1:8000/products/Rubik's%20Cube"
        );
        assert_eq!(
            s.url(&["products", "a/b?c#d%"]).as_str(),
            "http://127.0.0.1:8000/products/a%2Fb%3Fc%23d%25"
        );
        let prefixed = store("http://h:1/store/");
        assert_eq!(
            prefixed.url(&["orders", "7"]).as_str(),
            "http://h:1/store/orders/7"
        );
    }

    #[test]
    fn answers_are_sorted_into_data_refusals_and_failures() {
        let ok: Reply<OrderPlaced> = decode(200, br#"{"data":{"order_number":3}}"#);
        assert_eq!(ok.map(|a| a.data.order_number), Ok(3));

        let sold_out: Reply<OrderPlaced> = decode(
            400,
            br#"{"error":{"code":400,"message":"\"Tux\" is out of stock (available: 0)"}}"#,
        );
        let err = sold_out.expect_err("400 is a failure");
        assert!(err.is_out_of_stock() && !err.is_retryable());
        assert_eq!(err.status(), 400);

        let bad_quantity: Reply<OrderPlaced> = decode(
            400,
            br#"{"error":{"code":400,"message":"quantity must be >= 1"}}"#,
        );
        assert!(!bad_quantity.expect_err("400").is_out_of_stock());

        let busy: Reply<OrderPlaced> = decode(503, b"<html>busy</html>");
        let err = busy.expect_err("503 is a failure");
        assert!(err.is_retryable());
        assert!(err.message().contains("no error envelope"));

        let garbled: Reply<OrderPlaced> = decode(200, b"{}");
        assert!(matches!(
            garbled,
            Err(RequestFailure::Protocol { status: 200, .. })
        ));

        let lost: Reply<OrderRecord> = decode(
            404,
            br#"{"error":{"code":404,"message":"no order number 9"}}"#,
        );
        assert!(lost.expect_err("404").is_not_found());
        assert_eq!(RequestFailure::Transport("refused".into()).status(), 0);
    }
}
