//! The front-end's errors: [`FrontendError`] for a request (shown to clients once, through
//! [`ApiError`]), [`StartError`] for what stops the service from starting.

use std::time::Duration;

use api::ApiError;
use api::client::CallError;

#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    /// A downstream service answered with an error meant for the client.
    #[error("{}", .0.message)]
    Api(ApiError),
    #[error("the catalog is unavailable: {0}")]
    CatalogUnavailable(String),
    #[error("no order replica answered its health check")]
    NoOrderReplica,
    #[error("order replica {0} is still settling after an election; waiting for it")]
    ReplicaSettling(u64),
    #[error("the order service is unavailable (retried for {budget:?}): {last_error}")]
    OrdersUnavailable {
        budget: Duration,
        last_error: String,
    },
    #[error(
        "the front-end is shutting down; retry with the same Idempotency-Key (last attempt: {last_error})"
    )]
    ShuttingDown { last_error: String },
    #[error("cannot encode the answer: {0}")]
    Encode(String),
}

impl FrontendError {
    /// How a failed catalog call is reported: its own error envelope passes through, anything
    /// else means the catalog could not be asked.
    pub fn from_catalog(err: CallError) -> Self {
        match err {
            CallError::Api(err) => Self::Api(err),
            other => Self::CatalogUnavailable(other.to_string()),
        }
    }
}

impl From<FrontendError> for ApiError {
    fn from(err: FrontendError) -> Self {
        match err {
            FrontendError::Api(err) => err,
            FrontendError::CatalogUnavailable(_)
            | FrontendError::NoOrderReplica
            | FrontendError::ReplicaSettling(_)
            | FrontendError::OrdersUnavailable { .. }
            | FrontendError::ShuttingDown { .. } => ApiError::unavailable(err.to_string()),
            FrontendError::Encode(_) => ApiError::internal(err.to_string()),
        }
    }
}

/// Why the front-end could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Bind(#[from] std::io::Error),
}
