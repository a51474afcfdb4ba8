//! The toy store's shared vocabulary.
//!
//! Everything two services (or a service and the client) must agree on lives here and only
//! here:
//!
//! - [`envelope`]: the `{"data": …}` / `{"error": {code, message}}` JSON envelope and
//!   [`ApiError`], the one error every HTTP handler in the project turns into a response.
//! - One module per service's HTTP contract — its route templates, the bodies of its
//!   endpoints, and a typed client next to them: [`catalog`] ([`catalog::CatalogClient`]),
//!   [`frontend`] ([`frontend::FrontendClient`], the store's public API), [`order`]
//!   ([`order::ReplicaClient`]); [`cache_lease`], the protocol between the catalog and the
//!   front-ends' caches; [`status`], the `/status` pages.
//! - [`cluster`]: the order replicas' ids and addresses, parsed the same way by every service.
//! - [`url`]: base URLs checked and route templates filled, the one way every caller builds a
//!   URL; [`request_id`]: the rule for request ids and the id of the request being served.
//! - [`client`]: the outbound HTTP plumbing under the typed clients (timeouts, the cluster
//!   token, request-id propagation, envelope decoding).
//! - [`batch`]: [`batch::BatchQueue`], how every service turns concurrent requests into one
//!   round trip, commit or log entry.
//! - [`server`]: the inbound plumbing every service shares (request ids, tracing spans,
//!   `/health`, `/metrics`, the envelope for unknown routes and bad bodies, graceful shutdown).
//! - [`metrics`]: a service's `/metrics` read back (one series, a metric's sum).
//! - [`connections`]: the accept loop under [`server`]: hyper with timeouts on every
//!   connection and a cap on their number.
//! - `rocks` (feature `rocks`): how the services that store data open RocksDB.
//! - [`cli`], [`defaults`]: flag parsers, the flag groups the services share (the cluster
//!   token, peers, batching, retention, connection limits) and default addresses.

pub mod batch;
pub mod cache_lease;
pub mod catalog;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod connections;
pub mod defaults;
pub mod envelope;
pub mod frontend;
pub mod metrics;
pub mod order;
pub mod request_id;
#[cfg(feature = "rocks")]
pub mod rocks;
pub mod server;
pub mod status;
pub mod url;

pub use envelope::{ApiError, Data, ErrorBody, ErrorDetail, Reason};
