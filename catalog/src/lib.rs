//! The catalog: the toy store's stock authority.
//!
//! It owns every toy's price and stock, persisted in RocksDB ([`store`]); serializes and
//! group-commits buys and restocks through one writer ([`ledger`]); and keeps front-end caches
//! honest by pushing invalidations before it acknowledges a change ([`leases`]).
//!
//! Endpoints: `GET /products`, `GET /products/{name}` (with the toy's version), and, behind the
//! cluster token, `POST /buy` (idempotent by request id) and `POST /frontends` (cache leases).

pub mod error;
pub mod leases;
pub mod ledger;
mod routes;
pub mod store;
pub mod toys;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use api::client::ServiceClient;
use api::server::{self, ServerHandle};
use clap::Parser;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::time::Instant;

pub use error::CatalogError;
use leases::FrontendLeases;
use ledger::{Ledger, LedgerMetrics};
use store::StockStore;

/// How the catalog is run. Every flag has an environment variable.
#[derive(Debug, Clone, Parser)]
#[command(name = "catalog", about = "The toy store's catalog service")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "TOYSTORE_CATALOG_ADDR", default_value = api::defaults::CATALOG_ADDR)]
    pub listen: SocketAddr,

    /// Directory of the catalog's RocksDB (created if missing).
    #[arg(long, env = "TOYSTORE_CATALOG_DATA", default_value = "data/catalog")]
    pub data_dir: PathBuf,

    /// Stock of every toy when the catalog is created, and the level a restock refills to.
    /// Applies when the data directory is first created.
    #[arg(long, env = "TOYSTORE_INITIAL_STOCK", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000_000))]
    pub initial_stock: u32,

    /// Seconds between restocks of toys that are out of stock.
    #[arg(long = "restock-interval", env = "TOYSTORE_RESTOCK_SECS", default_value = "10",
          value_parser = api::cli::seconds)]
    pub restock_interval: Duration,

    /// Length of a front-end's cache lease, in milliseconds: how long a front-end that cannot
    /// be reached may delay an acknowledgement, and how long a restarted catalog waits before
    /// its first one.
    #[arg(long = "lease-ms", env = "TOYSTORE_LEASE_MS", default_value = "3000",
          value_parser = api::cli::millis)]
    pub lease: Duration,

    /// Deadline of one invalidation push, in milliseconds.
    #[arg(long = "push-timeout-ms", env = "TOYSTORE_PUSH_TIMEOUT_MS", default_value = "500",
          value_parser = api::cli::millis)]
    pub push_timeout: Duration,

    /// Shared secret required on internal endpoints (X-Cluster-Token). Unset: not checked.
    #[arg(long, env = "TOYSTORE_CLUSTER_TOKEN", hide_env_values = true)]
    pub cluster_token: Option<String>,
}

impl Config {
    /// A configuration for tests: an ephemeral port and the given data directory.
    pub fn for_test(data_dir: impl Into<PathBuf>) -> Self {
        let mut config = Self::parse_from(["catalog"]);
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.data_dir = data_dir.into();
        config.lease = Duration::from_millis(1000);
        config
    }
}

/// What every handler sees.
#[derive(Clone)]
pub struct AppState {
    pub ledger: Ledger,
    pub leases: Arc<FrontendLeases>,
}

/// Opens the store, starts the writer and the restock loop, and serves HTTP.
pub async fn serve(config: Config) -> Result<ServerHandle, CatalogError> {
    let store = {
        let dir = config.data_dir.clone();
        let stock = config.initial_stock;
        tokio::task::spawn_blocking(move || StockStore::open(&dir, stock))
            .await
            .map_err(|err| CatalogError::Storage(err.to_string()))??
    };
    // A catalog that restarts on existing data waits one lease before its first
    // acknowledgement: see `Ledger::start`.
    let hold_until = if store.existed() {
        Instant::now() + config.lease
    } else {
        Instant::now()
    };
    let store = Arc::new(store);

    let mut registry = Registry::with_prefix("catalog");
    let ledger_metrics = LedgerMetrics::default();
    registry.register(
        "buys",
        "Buys that decremented stock",
        ledger_metrics.buys.clone(),
    );
    registry.register(
        "units_sold",
        "Units sold",
        ledger_metrics.units_sold.clone(),
    );
    registry.register(
        "out_of_stock",
        "Buys refused for lack of stock",
        ledger_metrics.out_of_stock.clone(),
    );
    registry.register(
        "duplicate_buys",
        "Buys answered from an earlier request with the same id",
        ledger_metrics.duplicate_buys.clone(),
    );
    registry.register(
        "restocked_toys",
        "Toys refilled by the restock loop",
        ledger_metrics.restocked_toys.clone(),
    );
    registry.register(
        "commits",
        "Synced RocksDB commits of stock changes",
        ledger_metrics.commits.clone(),
    );
    registry.register(
        "commit_batch_size",
        "Commands folded into one commit",
        ledger_metrics.commit_batch_size.clone(),
    );
    let pushed = Counter::default();
    let revoked = Counter::default();
    registry.register(
        "invalidations_pushed",
        "Invalidations delivered to front-ends",
        pushed.clone(),
    );
    registry.register(
        "leases_revoked",
        "Front-end leases revoked after a failed push",
        revoked.clone(),
    );

    let token: Option<Arc<str>> = config.cluster_token.as_deref().map(Arc::from);
    let client = ServiceClient::new(config.push_timeout, token.clone());
    let leases = Arc::new(FrontendLeases::new(config.lease, client, pushed, revoked));

    let listener = server::bind(config.listen).await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (ledger, writer) = Ledger::start(
        store,
        leases.clone(),
        ledger_metrics,
        hold_until,
        shutdown.clone(),
    )?;
    let restock = tokio::spawn(ledger::restock_loop(
        ledger.clone(),
        config.restock_interval,
        shutdown.clone(),
    ));

    let state = AppState { ledger, leases };
    let router = server::finish(routes::router(state, token), registry);
    let mut handle = server::spawn(listener, router, "catalog")?;
    let stop = handle.shutdown_token();
    handle.attach(tokio::spawn(async move {
        stop.cancelled().await;
        shutdown.cancel();
    }));
    handle.attach(writer);
    handle.attach(restock);
    tracing::info!(
        addr = %handle.addr(),
        data_dir = %config.data_dir.display(),
        restock_every = ?config.restock_interval,
        "catalog ready"
    );
    Ok(handle)
}
