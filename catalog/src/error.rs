//! The catalog's one error type and how it is shown to callers.

use api::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("no toy named {0:?}")]
    UnknownProduct(String),
    #[error("quantity must be at least 1")]
    InvalidQuantity,
    #[error("{}", api::order::REQUEST_ID_RULE)]
    InvalidRequestId,
    #[error("request id {0:?} was already used for a different purchase")]
    RequestIdReused(String),
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("the catalog is shutting down")]
    ShuttingDown,
    #[error("cannot listen: {0}")]
    Bind(#[from] std::io::Error),
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
            CatalogError::UnknownProduct(_) => ApiError::not_found(message),
            CatalogError::InvalidQuantity | CatalogError::InvalidRequestId => {
                ApiError::bad_request(message)
            }
            CatalogError::RequestIdReused(_) => ApiError::conflict(message),
            CatalogError::ShuttingDown => ApiError::unavailable(message),
            CatalogError::Storage(_) | CatalogError::Bind(_) => ApiError::internal(message),
        }
    }
}
