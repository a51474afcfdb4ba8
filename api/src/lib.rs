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
//! - [`client`]: the outbound HTTP plumbing under the typed clients (timeouts, the cluster
//!   token, request-id propagation, envelope decoding, route URLs).
//! - [`batch`]: [`batch::BatchQueue`], how every service turns concurrent requests into one
//!   round trip, commit or log entry.
//! - [`server`]: the inbound plumbing every service shares (request ids, tracing spans,
//!   `/health`, `/metrics`, the envelope for unknown routes and bad bodies, graceful shutdown).
//! - `rocks` (feature `rocks`): how the services that store data open RocksDB.
//! - [`cli`], [`defaults`]: flag parsers and default addresses every binary shares.

pub mod batch;
pub mod cache_lease;
pub mod catalog;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod defaults;
pub mod envelope;
pub mod frontend;
pub mod order;
#[cfg(feature = "rocks")]
pub mod rocks;
pub mod server;
pub mod status;

pub use envelope::{ApiError, Data, ErrorBody, ErrorDetail, Reason};
