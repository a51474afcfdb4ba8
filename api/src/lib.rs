//! The toy store's shared vocabulary.
//!
//! Everything two services (or a service and the client) must agree on lives here and only
//! here:
//!
//! - [`envelope`]: the `{"data": …}` / `{"error": {code, message}}` JSON envelope and
//!   [`ApiError`], the one error every HTTP handler in the project turns into a response.
//! - [`catalog`], [`order`]: the JSON bodies of the public and internal endpoints.
//! - [`cluster`]: the order replicas' ids and addresses, parsed the same way by every service.
//! - [`client`]: the outbound HTTP client every service uses to call another (timeouts, the
//!   cluster token, request-id propagation, envelope decoding).
//! - [`batch`]: [`batch::BatchQueue`], how every service turns concurrent requests into one
//!   round trip, commit or log entry.
//! - [`server`]: the inbound plumbing every service shares (request ids, tracing spans,
//!   `/metrics`, the envelope for unknown routes and bad bodies, graceful shutdown).
//!
//! The wire types are plain serde structs; the two plumbing modules hold the only I/O.

pub mod batch;
pub mod catalog;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod defaults;
pub mod envelope;
pub mod order;
pub mod server;

pub use envelope::{ApiError, Data, ErrorBody, ErrorDetail};
