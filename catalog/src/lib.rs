//! The catalog: the toy store's stock authority.
//!
//! It owns every toy's price and stock, persisted in RocksDB ([`store`]); serializes and
//! group-commits reservations, settlements and restocks through one writer ([`ledger`]); and
//! keeps front-end caches honest by pushing invalidations before it acknowledges a change
//! ([`cache_lease`]).
//!
//! Endpoints (routes in [`api::catalog::routes`]): `GET /products`, `GET /products/{name}`
//! (with the toy's version), and, behind the cluster token, `POST /reservations` (idempotent
//! by reservation id), `POST /settlements` (confirm or release, as the Raft log decided),
//! `GET /reservations/pending` (what is left unsettled), `GET /stock` (every toy's accounts)
//! and `POST /frontends` (cache leases).

pub mod cache_lease;
pub mod config;
pub mod error;
pub mod ledger;
pub mod metrics;
mod routes;
pub mod store;
pub mod toys;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use api::client::ServiceClient;
use api::server::{self, ServerHandle};
use prometheus_client::registry::Registry;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use cache_lease::CacheLeases;
pub use config::Config;
pub use error::{CatalogError, StartError};
use ledger::Ledger;
use metrics::CatalogMetrics;
use store::StockStore;

/// What every handler sees.
#[derive(Clone)]
pub struct AppState {
    pub ledger: Ledger,
    pub leases: Arc<CacheLeases>,
}

/// Opens the store, starts the writer and the restock loop, and serves HTTP.
pub async fn serve(config: Config) -> Result<ServerHandle, StartError> {
    let store = {
        let dir = config.data_dir.clone();
        let stock = config.initial_stock;
        tokio::task::spawn_blocking(move || StockStore::open(&dir, stock))
            .await
            .map_err(|err| StartError::Open(CatalogError::Storage(err.to_string())))?
            .map_err(StartError::Open)?
    };
    // A catalog that restarts on existing data waits one lease before its first
    // acknowledgement: see `Ledger::start`.
    let hold_until = if store.existed() {
        Instant::now() + config.lease
    } else {
        Instant::now()
    };

    let mut registry = Registry::with_prefix("catalog");
    let metrics = CatalogMetrics::register(&mut registry);
    let token: Option<Arc<str>> = config.cluster_token.as_deref().map(Arc::from);
    let leases = Arc::new(CacheLeases::new(
        config.lease,
        ServiceClient::new(config.push_timeout, token.clone()),
        metrics.invalidations_pushed.clone(),
        metrics.leases_revoked.clone(),
    ));

    let listener = server::bind(config.listen).await?;
    let shutdown = CancellationToken::new();
    let (ledger, writer) = Ledger::start(
        Arc::new(store),
        leases.clone(),
        metrics,
        hold_until,
        shutdown.clone(),
    )
    .map_err(StartError::Open)?;
    let housekeeping = tokio::spawn(ledger::housekeeping_loop(
        ledger.clone(),
        config.restock_interval,
        config.retention,
        shutdown.clone(),
    ));

    let state = AppState { ledger, leases };
    let router = server::finish(routes::router(state, token), registry, server::process_up());
    let mut handle = server::spawn(listener, router, "catalog", shutdown)?;
    handle.attach(writer);
    handle.attach(housekeeping);
    tracing::info!(
        addr = %handle.addr(),
        data_dir = %config.data_dir.display(),
        restock_every = ?config.restock_interval,
        "catalog ready"
    );
    Ok(handle)
}
