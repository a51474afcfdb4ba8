//! A replica's errors: [`OrderError`] for a request (shown to callers once, through
//! [`ApiError`]), wrapping the storage layer's [`StoreError`]; [`StartError`] for what stops
//! the replica from starting.

use api::client::CallError;
use api::{ApiError, Reason};
use axum::http::StatusCode;

use crate::batcher::ProposeError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("no toy named {0:?}")]
    UnknownProduct(String),
    #[error("{name:?} is out of stock (available: {available})")]
    OutOfStock { name: String, available: u32 },
    #[error("{0}")]
    InvalidOrder(String),
    #[error("request id {0:?} was already used for a different order")]
    RequestIdReused(String),
    #[error(
        "request id {0:?} was used for an order too long ago to tell whether this is a retry; send the order with a new request id"
    )]
    RequestIdExpired(String),
    #[error("no order number {0}")]
    NoSuchOrder(u64),
    #[error("no Raft leader is known yet; retry shortly")]
    NoLeader,
    #[error("the order was not committed: {0}")]
    NotCommitted(#[from] ProposeError),
    #[error("cannot confirm leadership for a linearizable read: {0}")]
    ReadNotConfirmed(String),
    #[error("the catalog could not be asked: {0}")]
    CatalogUnavailable(String),
    #[error("the order's reservation was abandoned before it committed; retry it")]
    Abandoned,
    #[error("internal error: {0}")]
    Internal(String),
    /// Another service (the catalog, or the leader we forwarded to) answered with an error
    /// envelope; it is passed through unchanged.
    #[error("{}", .0.message)]
    Downstream(ApiError),
    #[error("cannot reach the Raft leader: {0}")]
    LeaderUnreachable(String),
    #[error("storage failure: {0}")]
    Storage(#[from] StoreError),
}

impl OrderError {
    /// A failed call to the leader we forwarded to: its answers pass through, silence is
    /// "try again".
    pub fn from_leader(err: CallError) -> Self {
        match err {
            CallError::Api(err) => Self::Downstream(err),
            other => Self::LeaderUnreachable(other.to_string()),
        }
    }

    /// A failed call to the catalog: its refusals stay refusals, silence is "try again".
    pub fn from_catalog(err: CallError) -> Self {
        match err {
            CallError::Api(err) if err.status.is_client_error() => Self::Downstream(err),
            other => Self::CatalogUnavailable(other.to_string()),
        }
    }
}

impl From<OrderError> for ApiError {
    fn from(err: OrderError) -> Self {
        let message = err.to_string();
        let (status, reason) = match &err {
            OrderError::UnknownProduct(_) => (StatusCode::NOT_FOUND, Reason::UnknownToy),
            OrderError::NoSuchOrder(_) => (StatusCode::NOT_FOUND, Reason::NoSuchOrder),
            OrderError::OutOfStock { .. } => (StatusCode::BAD_REQUEST, Reason::OutOfStock),
            OrderError::InvalidOrder(_) => (StatusCode::BAD_REQUEST, Reason::BadRequest),
            OrderError::RequestIdReused(_) => (StatusCode::CONFLICT, Reason::RequestIdReused),
            OrderError::RequestIdExpired(_) => (StatusCode::CONFLICT, Reason::RequestIdExpired),
            OrderError::Downstream(answer) => return answer.clone(),
            // "This replica cannot serve now": the front-end selects another if it lasts.
            OrderError::NoLeader
            | OrderError::Abandoned
            | OrderError::NotCommitted(_)
            | OrderError::ReadNotConfirmed(_)
            | OrderError::LeaderUnreachable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, Reason::Unavailable)
            }
            // A service behind the replica failed: retrying is right, another replica is not.
            OrderError::CatalogUnavailable(_) => (StatusCode::BAD_GATEWAY, Reason::Unavailable),
            OrderError::Storage(_) | OrderError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, Reason::Internal)
            }
        };
        ApiError::new(status, message).with_reason(reason)
    }
}

/// Why a replica could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("cannot open the store: {0}")]
    Open(#[from] StoreError),
    #[error("cannot start Raft: {0}")]
    Raft(String),
    #[error("{0}")]
    Bind(#[from] std::io::Error),
}
