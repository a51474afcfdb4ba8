//! The outbound HTTP client every service uses to call another.
//!
//! One pooled `reqwest` client per service, with a per-request deadline, the cluster token on
//! every call, the caller's request id forwarded, and the response envelope decoded into either
//! the `data` value or an [`ApiError`]. [`CallError`] tells a peer that answered with an error
//! apart from a peer that could not be reached, which is what retry and failover decide on.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::defaults::{CLUSTER_TOKEN_HEADER, REQUEST_ID_HEADER};
use crate::envelope::{ApiError, Data, ErrorBody};
use crate::server::current_request_id;

/// Why a call to another service did not produce a `data` value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// No answer: connection refused or reset, or the peer closed the connection.
    #[error("{0}")]
    Unreachable(String),
    /// The peer did not answer before the deadline.
    #[error("{0}")]
    Timeout(String),
    /// The peer answered with an error envelope.
    #[error("{0}")]
    Api(ApiError),
    /// The peer answered with something that is not the envelope.
    #[error("{0}")]
    Protocol(String),
}

impl CallError {
    /// True when the peer may be down (no answer at all): the cue to fail over.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable(_) | Self::Timeout(_))
    }

    /// The HTTP status of an enveloped error answer.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api(err) => Some(err.status),
            _ => None,
        }
    }

    fn from_reqwest(url: &str, err: reqwest::Error) -> Self {
        let err = err.without_url();
        if err.is_timeout() {
            Self::Timeout(format!("{url} did not answer in time"))
        } else if err.is_decode() {
            Self::Protocol(format!("{url} sent an unreadable answer: {err}"))
        } else {
            Self::Unreachable(format!("cannot reach {url}: {}", error_chain(&err)))
        }
    }
}

impl From<CallError> for ApiError {
    /// How a failed downstream call is reported to our own caller.
    fn from(err: CallError) -> Self {
        match err {
            CallError::Api(err) => err,
            CallError::Unreachable(msg) | CallError::Timeout(msg) => ApiError::unavailable(msg),
            CallError::Protocol(msg) => ApiError::new(StatusCode::BAD_GATEWAY, msg),
        }
    }
}

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

/// A pooled HTTP client for calls between services.
#[derive(Clone, Debug)]
pub struct ServiceClient {
    http: reqwest::Client,
    token: Option<Arc<str>>,
}

impl ServiceClient {
    /// `timeout` bounds each whole request (connect, send, answer).
    pub fn new(timeout: Duration, token: Option<Arc<str>>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(1)))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            // Calls between services never follow redirects: a redirect is an answer to decode.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|err| {
                // Only fails when the TLS backend cannot initialise; this client has none.
                tracing::error!(%err, "cannot build an HTTP client with options, using defaults");
                reqwest::Client::new()
            });
        Self { http, token }
    }

    /// The underlying client, for calls with non-JSON bodies.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A GET with the shared headers.
    pub fn get(&self, url: &str) -> reqwest::RequestBuilder {
        self.with_headers(self.http.get(url))
    }

    /// A POST with the shared headers.
    pub fn post(&self, url: &str) -> reqwest::RequestBuilder {
        self.with_headers(self.http.post(url))
    }

    /// Adds the cluster token and the current request id.
    pub fn with_headers(&self, mut req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some(token) = &self.token {
            req = req.header(CLUSTER_TOKEN_HEADER, token.as_ref());
        }
        if let Some(id) = current_request_id() {
            req = req.header(REQUEST_ID_HEADER, id);
        }
        req
    }

    /// Sends the request and decodes the envelope.
    pub async fn call<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, CallError> {
        let (client, req) = req.build_split();
        let req = req.map_err(|err| CallError::Protocol(format!("cannot build request: {err}")))?;
        let url = format!("{} {}", req.method(), req.url());
        let response = client
            .execute(req)
            .await
            .map_err(|err| CallError::from_reqwest(&url, err))?;
        decode(&url, response).await
    }
}

/// Turns an HTTP answer into its `data` value or the [`ApiError`] it carries.
pub async fn decode<T: DeserializeOwned>(
    url: &str,
    response: reqwest::Response,
) -> Result<T, CallError> {
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|err| CallError::from_reqwest(url, err))?;
    if status.is_success() {
        serde_json::from_slice::<Data<T>>(&bytes)
            .map(|d| d.data)
            .map_err(|err| {
                CallError::Protocol(format!(
                    "{url} answered {status} with an unexpected body: {err}"
                ))
            })
    } else {
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => Err(CallError::Api(ApiError::new(status, body.error.message))),
            Err(_) => Err(CallError::Protocol(format!(
                "{url} answered {status} without an error envelope: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ))),
        }
    }
}
