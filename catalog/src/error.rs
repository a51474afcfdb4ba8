//! The catalog's errors: [`CatalogError`] for a request (shown to callers once, through
//! [`ApiError`]), [`StartError`] for what stops the service from starting.

use api::{ApiError, Reason};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("no toy named {0:?}")]
    UnknownProduct(String),
    #[error("quantity must be at least 1")]
    InvalidQuantity,
    #[error("{}", api::request_id::REQUEST_ID_RULE)]
    InvalidRequestId,
    #[error("request id {0:?} was already used for a different purchase")]
    RequestIdReused(String),
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("the catalog is shutting down")]
    ShuttingDown,
}

impl From<rocksdb::Error> for CatalogError {
    fn from(err: rocksdb::Error) -> Self {
        Self::Storage(err.into_string())
    }
}

impl From<CatalogError> for ApiError {
    fn from(err: CatalogError) -> Self {
        let message = err.to_string();
        match err {
            CatalogError::UnknownProduct(_) => {
                ApiError::not_found(message).with_reason(Reason::UnknownToy)
            }
            CatalogError::InvalidQuantity | CatalogError::InvalidRequestId => {
                ApiError::bad_request(message)
            }
            CatalogError::RequestIdReused(_) => {
                ApiError::conflict(message).with_reason(Reason::RequestIdReused)
            }
            CatalogError::ShuttingDown => ApiError::unavailable(message),
            CatalogError::Storage(_) => ApiError::internal(message),
        }
    }
}

/// Why the catalog could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("cannot open the stock store: {0}")]
    Open(#[source] CatalogError),
    #[error("{0}")]
    Bind(#[from] std::io::Error),
}
