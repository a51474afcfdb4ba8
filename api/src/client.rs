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
use crate::envelope::{ApiError, Data, ErrorBody, ErrorDetail, Reason};
use crate::request_id::current_request_id;

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

    /// The HTTP status as a number, 0 when there was no enveloped answer (for timelines).
    pub fn status_code(&self) -> u16 {
        self.status().map_or(0, |status| status.as_u16())
    }

    /// Answers that mean "not now" rather than "no": no answer at all, or the peer said it is
    /// briefly unable (no leader yet, a write that did not commit in time, a peer of its own
    /// unreachable). Sending the same request again, with the same request id, is safe.
    pub fn is_retryable(&self) -> bool {
        self.is_unreachable()
            || matches!(
                self.status(),
                Some(
                    StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::GATEWAY_TIMEOUT
                        | StatusCode::BAD_GATEWAY
                )
            )
    }

    /// The envelope's reason, when the peer answered with one.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Self::Api(err) => Some(err.reason),
            _ => None,
        }
    }

    /// The 400 the store answers when there is not enough stock.
    pub fn is_out_of_stock(&self) -> bool {
        self.reason() == Some(Reason::OutOfStock)
    }

    /// A 404: the thing asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }

    pub(crate) fn from_reqwest(url: &str, err: reqwest::Error) -> Self {
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

/// An error and its causes on one line: reqwest's own message alone is often just "error
/// sending request".
pub fn error_chain(err: &dyn std::error::Error) -> String {
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

    /// `GET url`, decoded.
    pub async fn get_json<T: DeserializeOwned>(&self, url: &reqwest::Url) -> Result<T, CallError> {
        self.call(self.get(url.as_str())).await
    }

    /// `POST url` with a JSON body, decoded.
    pub async fn post_json<T: DeserializeOwned, B: serde::Serialize + ?Sized>(
        &self,
        url: &reqwest::Url,
        body: &B,
    ) -> Result<T, CallError> {
        self.call(self.post(url.as_str()).json(body)).await
    }

    /// Sends the request and decodes the envelope.
    pub async fn call<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, CallError> {
        self.call_with_headers(req).await.map(|(value, _)| value)
    }

    /// [`Self::call`], also returning the answer's headers.
    pub async fn call_with_headers<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(T, reqwest::header::HeaderMap), CallError> {
        let (client, req) = req.build_split();
        let req = req.map_err(|err| CallError::Protocol(format!("cannot build request: {err}")))?;
        let url = format!("{} {}", req.method(), req.url());
        let response = client
            .execute(req)
            .await
            .map_err(|err| CallError::from_reqwest(&url, err))?;
        let headers = response.headers().clone();
        decode(&url, response).await.map(|value| (value, headers))
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
    decode_body(url, status, &bytes)
}

/// [`decode`] for an answer already read: `data` on success, else the envelope's error.
pub fn decode_body<T: DeserializeOwned>(
    url: &str,
    status: StatusCode,
    body: &[u8],
) -> Result<T, CallError> {
    if status.is_success() {
        serde_json::from_slice::<Data<T>>(body)
            .map(|d| d.data)
            .map_err(|err| {
                CallError::Protocol(format!(
                    "{url} answered {status} with an unexpected body: {err}"
                ))
            })
    } else {
        match serde_json::from_slice::<ErrorBody>(body) {
            // The body's `code` repeats the status; the status line is what HTTP promises.
            Ok(envelope) => Err(CallError::Api(ApiError {
                status,
                ..envelope.error.into_error()
            })),
            Err(_) => Err(CallError::Protocol(format!(
                "{url} answered {status} without an error envelope: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ))),
        }
    }
}

/// The answers of a batched call (one `Result` per item, refusals as envelope details), one
/// per item the caller sent: a refusal becomes that item's [`CallError::Api`]; a failed call,
/// or an answer with the wrong number of items, fails every item alike. `what` names the
/// items in that error ("orders").
pub fn per_item_answers<T>(
    answers: Result<Vec<Result<T, ErrorDetail>>, CallError>,
    sent: usize,
    what: &str,
) -> Vec<Result<T, CallError>> {
    match answers {
        Ok(answers) if answers.len() == sent => answers
            .into_iter()
            .map(|answer| answer.map_err(|refusal| CallError::Api(refusal.into_error())))
            .collect(),
        Ok(answers) => {
            let err = CallError::Protocol(format!("{sent} {what} got {} answers", answers.len()));
            (0..sent).map(|_| Err(err.clone())).collect()
        }
        Err(err) => (0..sent).map(|_| Err(err.clone())).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_sorted_into_data_refusals_and_failures() {
        let ok: Result<u64, _> = decode_body("u", StatusCode::OK, br#"{"data":3}"#);
        assert_eq!(ok.unwrap(), 3);

        let body = br#"{"error":{"code":400,"reason":"out_of_stock","message":"\"Tux\": 0 left"}}"#;
        let sold_out = decode_body::<u64>("u", StatusCode::BAD_REQUEST, body).unwrap_err();
        assert!(sold_out.is_out_of_stock() && !sold_out.is_retryable());
        assert_eq!(sold_out.status_code(), 400);

        // The reason decides, never the words.
        let body = br#"{"error":{"code":400,"message":"\"Tux\" is out of stock (available: 0)"}}"#;
        assert!(
            !decode_body::<u64>("u", StatusCode::BAD_REQUEST, body)
                .unwrap_err()
                .is_out_of_stock()
        );
        let body = br#"{"error":{"code":400,"reason":"bad_request","message":"quantity must be at least 1"}}"#;
        assert!(
            !decode_body::<u64>("u", StatusCode::BAD_REQUEST, body)
                .unwrap_err()
                .is_out_of_stock()
        );

        let busy = decode_body::<u64>("u", StatusCode::SERVICE_UNAVAILABLE, b"<html>busy</html>")
            .unwrap_err();
        assert!(matches!(busy, CallError::Protocol(_)));
        let busy = decode_body::<u64>(
            "u",
            StatusCode::SERVICE_UNAVAILABLE,
            br#"{"error":{"code":503,"message":"no leader"}}"#,
        )
        .unwrap_err();
        assert!(busy.is_retryable());

        let garbled = decode_body::<u64>("u", StatusCode::OK, b"{}").unwrap_err();
        assert!(matches!(garbled, CallError::Protocol(_)) && !garbled.is_retryable());
        assert!(CallError::Unreachable("reset".into()).is_retryable());
        assert!(
            decode_body::<u64>(
                "u",
                StatusCode::NOT_FOUND,
                br#"{"error":{"code":404,"message":"no"}}"#
            )
            .unwrap_err()
            .is_not_found()
        );
    }

    #[test]
    fn batched_answers_become_one_result_per_item() {
        let refusal = ErrorDetail {
            code: 400,
            reason: Some(Reason::OutOfStock),
            message: "out of stock".into(),
            request_id: None,
        };
        let answers = per_item_answers(Ok(vec![Ok(7), Err(refusal)]), 2, "orders");
        assert!(matches!(answers[0], Ok(7)));
        let err = answers[1].as_ref().unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::BAD_REQUEST));
        assert_eq!(err.to_string(), "400 Bad Request: out of stock");
        assert!(err.is_out_of_stock());

        // A short answer fails every item: none can be matched to its order.
        let short = per_item_answers::<u64>(Ok(vec![Ok(1)]), 3, "orders");
        assert_eq!(short.len(), 3);
        assert!(
            short
                .iter()
                .all(|a| matches!(a, Err(CallError::Protocol(m)) if m == "3 orders got 1 answers"))
        );

        let failed = per_item_answers::<u64>(Err(CallError::Timeout("slow".into())), 2, "orders");
        assert!(
            failed
                .iter()
                .all(|a| a.as_ref().is_err_and(CallError::is_unreachable))
        );
    }
}
