//! Request ids: the rule every id and `Idempotency-Key` follows, and the id of the request the
//! current task is serving. The server sets it around each handler ([`scope`]); the outbound
//! client forwards it and error envelopes name it, so one id follows an order across every
//! service and into every log line. A leaf module, below both the server and the client.

use std::future::Future;

/// Longest accepted idempotency key / request id, in bytes.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// What [`valid_request_id`] accepts, as a sentence for error messages.
pub const REQUEST_ID_RULE: &str =
    "a request id (Idempotency-Key) must be 1 to 128 visible ASCII characters";

/// Request ids (and idempotency keys) are 1 to [`MAX_REQUEST_ID_LEN`] visible ASCII
/// characters, the same rule at every service that stores them.
pub fn valid_request_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `work` as the serving of request `id`: inside it, [`current_request_id`] is `id`.
pub async fn scope<F: Future>(id: String, work: F) -> F::Output {
    REQUEST_ID.scope(id, work).await
}

/// The request id of the request this task is serving, if any. Outbound calls made through
/// [`crate::client`] forward it so one id follows an order across every service.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}
