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
pub mod faults;
pub mod ledger;
pub mod metrics;
mod routes;
pub mod store;
pub mod toys;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use api::cli::ClusterToken;
use api::client::ServiceClient;
use api::server::{self, ServerHandle};
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use cache_lease::CacheLeases;
pub use config::Config;
pub use error::{CatalogError, StartError};
use ledger::{Ledger, LedgerSettings, Retention};
use metrics::CatalogMetrics;
use store::StockStore;

/// What every handler sees.
#[derive(Clone)]
pub struct AppState {
    pub ledger: Ledger,
    pub leases: Arc<CacheLeases>,
}

/// Opens the store, starts the writer and the restock loop, and serves HTTP. The first change
/// waits until the front-ends of earlier runs are reset ([`CacheLeases::reconcile`]).
pub async fn serve(config: Config) -> Result<ServerHandle, StartError> {
    // Before anything else: no token and no --insecure is a configuration error.
    let token = config.auth.token().map_err(StartError::Config)?;
    if token.is_none() {
        tracing::warn!("--insecure: internal endpoints accept calls without a token");
    }
    // Before the store opens: no lease of an earlier run outlives a lease from here.
    let started = Instant::now();
    let store = {
        let dir = config.data_dir.clone();
        let stock = config.initial_stock;
        tokio::task::spawn_blocking(move || StockStore::open(&dir, stock))
            .await
            .map_err(|err| StartError::Open(CatalogError::Storage(err.to_string())))?
            .map_err(StartError::Open)?
    };
    let store = Arc::new(store);

    let mut registry = Registry::with_prefix("catalog");
    let metrics = CatalogMetrics::register(&mut registry);
    let leases = Arc::new(
        CacheLeases::new(
            config.lease,
            ServiceClient::new(
                config.push_timeout,
                token.as_ref().map(ClusterToken::expose),
            ),
            store.clone(),
            metrics.invalidations_pushed.clone(),
            metrics.leases_revoked.clone(),
        )
        .map_err(StartError::Open)?,
    );

    let listener = server::bind(config.listen).await?;
    let shutdown = CancellationToken::new();
    let (open_gate, ready) = watch::channel(false);
    // Armed only with --fault-injection (the command line requires it too).
    let faults = match config.fault_injection {
        true => faults::Faults::new(&config.breaks),
        false => faults::Faults::default(),
    };
    let (ledger, writer) = Ledger::start(
        store,
        leases.clone(),
        metrics.clone(),
        ready,
        LedgerSettings {
            retention: Retention::new(config.retention.dedup_retention)
                .with_refusal_window(config.refusal_retention),
            clock: ledger::system_clock(),
            faults,
        },
        shutdown.clone(),
    )
    .map_err(StartError::Open)?;
    let housekeeping = tokio::spawn(ledger::housekeeping_loop(
        ledger.clone(),
        config.restock_interval,
        shutdown.clone(),
    ));

    let state = AppState {
        ledger,
        leases: leases.clone(),
    };
    let router = server::finish(routes::router(state, token), registry, server::process_up());
    let mut handle = server::spawn_with(
        listener,
        router,
        "catalog",
        shutdown.clone(),
        config.serve.limits(),
    )?;
    handle.attach(writer);
    handle.attach(housekeeping);
    // After the server is up, so that it answers reads and renewals meanwhile.
    handle.attach(tokio::spawn(async move {
        tokio::select! {
            // The gate stays closed: changes still waiting are answered "shutting down".
            _ = shutdown.cancelled() => {}
            report = leases.reconcile(started) => {
                metrics.restart_frontends_reset.set(gauge(report.reset));
                metrics.restart_frontends_waited.set(gauge(report.unreachable));
                let _ = open_gate.send(true);
            }
        }
    }));
    tracing::info!(
        addr = %handle.addr(),
        data_dir = %config.data_dir.display(),
        restock_every = ?config.restock_interval,
        "catalog ready"
    );
    Ok(handle)
}

fn gauge(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}
