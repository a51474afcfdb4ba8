//! The JSON envelope of every response in the store.
//!
//! Success: `{"data": …}`. Failure: `{"error": {"code": 404, "reason": "unknown_toy",
//! "message": "…"}}` with the HTTP status equal to `code`. [`ApiError`] is the single error
//! type handlers return; each service crate converts its own error enum into it once.
//!
//! Callers decide on `code` and the machine-readable [`Reason`], never on `message`, which is
//! for people. A server error (5xx) is logged in full under the request's id and answered with
//! a plain sentence and that id: internal addresses, library error chains and storage text stay
//! in the logs.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// A successful response body: `{"data": T}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Data<T> {
    pub data: T,
}

impl<T> Data<T> {
    pub fn new(data: T) -> Self {
        Self { data }
    }
}

impl<T: Serialize> IntoResponse for Data<T> {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

/// Why a request failed, for programs: the envelope's `reason`. Several reasons share an HTTP
/// status (a 400 is bad input or out of stock; a 409 a reused or an expired request id), so
/// a caller that must tell them apart reads this, not the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// 400: the request itself is malformed or out of bounds; sending it again cannot help.
    BadRequest,
    /// 400: not enough units of the toy in stock now.
    OutOfStock,
    /// 401: an internal endpoint called without the cluster token.
    Unauthorized,
    /// 404: no toy by that name.
    UnknownToy,
    /// 404: no order with that number.
    NoSuchOrder,
    /// 404: no such route, or nothing else by that name.
    NotFound,
    /// 405: the route exists, the method does not.
    MethodNotAllowed,
    /// 408: the request was not read and answered within the server's request timeout (a
    /// client sending its body too slowly, or a handler stuck); the connection is closed.
    RequestTimeout,
    /// 409: the request id was used for a different request.
    RequestIdReused,
    /// 409: the request id was used so long ago that the store no longer knows whether this
    /// is a retry; send the request again with a new id.
    RequestIdExpired,
    /// 413 or 415: the body is too large or not JSON.
    UnsupportedBody,
    /// 502, 503 or 504: the store cannot answer now (no leader, no quorum, a peer down);
    /// retrying with the same request id is safe.
    Unavailable,
    /// 500: a bug or a storage failure; the details are in the service's log under the
    /// request id.
    Internal,
    /// A reason this build does not know (sent by a newer peer); decide on `code`.
    #[serde(other)]
    Other,
}

impl Reason {
    /// The reason a bare status implies, for errors built without a more specific one and for
    /// envelopes from peers that sent none.
    pub fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::BAD_REQUEST => Self::BadRequest,
            StatusCode::UNAUTHORIZED => Self::Unauthorized,
            StatusCode::NOT_FOUND => Self::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::REQUEST_TIMEOUT => Self::RequestTimeout,
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Self::UnsupportedBody
            }
            StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => Self::Unavailable,
            status if status.is_server_error() => Self::Internal,
            _ => Self::Other,
        }
    }

    /// What a server error of this reason tells the caller, in place of its details.
    fn public_message(self) -> &'static str {
        match self {
            Self::Unavailable => {
                "the store cannot answer right now; retry with the same Idempotency-Key"
            }
            _ => "the store failed to handle this request; the request id finds it in the logs",
        }
    }
}

/// A failed response body: `{"error": {"code": …, "reason": …, "message": …}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// The HTTP status code, repeated in the body for clients that only see the body.
    pub code: u16,
    /// Why, for programs. Absent only from peers older than the field; read it through
    /// [`ErrorDetail::reason`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// One human-readable sentence.
    pub message: String,
    /// The request's id, on server errors: what to quote when asking what went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ErrorDetail {
    /// The reason given, or the one the status implies.
    pub fn reason(&self) -> Reason {
        self.reason.unwrap_or_else(|| {
            Reason::for_status(StatusCode::from_u16(self.code).unwrap_or(StatusCode::BAD_GATEWAY))
        })
    }

    /// The error this envelope describes, as a caller sees it.
    pub fn into_error(self) -> ApiError {
        let status = StatusCode::from_u16(self.code).unwrap_or(StatusCode::BAD_GATEWAY);
        ApiError {
            status,
            reason: self.reason(),
            message: self.message,
        }
    }
}

/// An error on its way to becoming an enveloped HTTP response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub reason: Reason,
    /// For a 4xx, the sentence the caller sees; for a 5xx, the details that go to the log.
    pub message: String,
}

impl ApiError {
    /// An error whose reason is the one `status` implies.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            reason: Reason::for_status(status),
            message: message.into(),
        }
    }

    /// The same error with a more specific reason.
    pub fn with_reason(mut self, reason: Reason) -> Self {
        self.reason = reason;
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The envelope this error is sent as, with its details: for answers between services
    /// inside one response (the items of a batch), whose caller logs or passes them on.
    pub fn detail(&self) -> ErrorDetail {
        ErrorDetail {
            code: self.status.as_u16(),
            reason: Some(self.reason),
            message: self.message.clone(),
            request_id: None,
        }
    }

    /// The envelope this error is sent as on its own HTTP answer. A server error's details
    /// are replaced by a plain sentence and the request id that finds them in the log
    /// ([`IntoResponse`] logs them).
    pub fn body(&self) -> ErrorBody {
        let mut detail = self.detail();
        if self.status.is_server_error() {
            detail.message = self.reason.public_message().to_owned();
            detail.request_id = crate::request_id::current_request_id();
        }
        ErrorBody { error: detail }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, reason = ?self.reason, message = %self.message, "request failed");
        } else {
            tracing::debug!(status = %self.status, reason = ?self.reason, message = %self.message, "request rejected");
        }
        (self.status, Json(self.body())).into_response()
    }
}

/// What handlers return.
pub type ApiResult<T> = Result<Data<T>, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_envelope_matches_the_spec() {
        let err = ApiError::not_found("no toy named \"Yo-yo\"");
        let json = serde_json::to_value(err.body()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": {"code": 404, "reason": "not_found", "message": "no toy named \"Yo-yo\""}})
        );
        let typed = ApiError::not_found("no toy named \"Yo-yo\"").with_reason(Reason::UnknownToy);
        assert_eq!(typed.body().error.reason, Some(Reason::UnknownToy));
    }

    #[test]
    fn server_errors_keep_their_details_out_of_the_body() {
        let err = ApiError::unavailable("cannot reach http://10.0.0.7:7001: connection refused");
        let body = err.body().error;
        assert_eq!(body.code, 503);
        assert_eq!(body.reason, Some(Reason::Unavailable));
        assert!(!body.message.contains("10.0.0.7"), "{}", body.message);
        // Between services, inside a batch answer, the details stay.
        assert!(err.detail().message.contains("10.0.0.7"));
        let rocks = ApiError::internal("IO error: No space left on device");
        assert!(!rocks.body().error.message.contains("space"));
    }

    #[test]
    fn reasons_round_trip_and_unknown_ones_are_tolerated() {
        let sent = ApiError::conflict("used too long ago").with_reason(Reason::RequestIdExpired);
        let wire = serde_json::to_string(&sent.body()).unwrap();
        let back: ErrorBody = serde_json::from_str(&wire).unwrap();
        assert_eq!(back.error.into_error(), sent);
        let newer: ErrorBody = serde_json::from_str(
            r#"{"error": {"code": 409, "reason": "something_new", "message": "?"}}"#,
        )
        .unwrap();
        assert_eq!(newer.error.reason(), Reason::Other);
        let older: ErrorBody =
            serde_json::from_str(r#"{"error": {"code": 503, "message": "no leader"}}"#).unwrap();
        assert_eq!(older.error.reason(), Reason::Unavailable);
    }

    #[test]
    fn data_envelope_matches_the_spec() {
        let json = serde_json::to_value(Data::new(serde_json::json!({"order_number": 0}))).unwrap();
        assert_eq!(json, serde_json::json!({"data": {"order_number": 0}}));
    }
}
