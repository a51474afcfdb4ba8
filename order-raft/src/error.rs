//! The order service's one error type and how it is shown to callers.

use api::ApiError;
use api::client::CallError;
use axum::http::StatusCode;

use crate::batcher::ProposeError;

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("no toy named {0:?}")]
    UnknownProduct(String),
    #[error("{name:?} {} (available: {available})", api::order::OUT_OF_STOCK)]
    OutOfStock { name: String, available: u32 },
    #[error("{0}")]
    InvalidOrder(String),
    #[error("request id {0:?} was already used for a different order")]
    RequestIdReused(String),
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
    /// Another service (the catalog, or the leader we forwarded to) answered with an error
    /// envelope; it is passed through unchanged.
    #[error("{}", .0.message)]
    Downstream(ApiError),
    #[error("cannot reach the Raft leader: {0}")]
    LeaderUnreachable(String),
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("cannot start: {0}")]
    Startup(String),
    #[error("cannot listen: {0}")]
    Bind(#[from] std::io::Error),
}

impl From<rocksdb::Error> for OrderError {
    fn from(err: rocksdb::Error) -> Self {
        Self::Storage(err.into_string())
    }
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
        let status = match &err {
            OrderError::UnknownProduct(_) | OrderError::NoSuchOrder(_) => StatusCode::NOT_FOUND,
            OrderError::OutOfStock { .. } | OrderError::InvalidOrder(_) => StatusCode::BAD_REQUEST,
            OrderError::RequestIdReused(_) => StatusCode::CONFLICT,
            OrderError::Downstream(answer) => return answer.clone(),
            OrderError::NoLeader
            | OrderError::NotCommitted(_)
            | OrderError::ReadNotConfirmed(_)
            | OrderError::CatalogUnavailable(_)
            | OrderError::LeaderUnreachable(_) => StatusCode::SERVICE_UNAVAILABLE,
            OrderError::Storage(_) | OrderError::Startup(_) | OrderError::Bind(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError::new(status, message)
    }
}
