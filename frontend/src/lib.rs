//! The front-end: the toy store's public HTTP API.
//!
//! - Product queries ([`products`]) go through an LRU cache ([`cache`]) kept correct by the
//!   catalog's invalidation push and a lease ([`cache_lease`]).
//! - Orders and order queries ([`orders`]) go to the order replica picked by
//!   [`selector::ReplicaSelector`] and are retried with the same request id across failover;
//!   committed orders are kept in [`order_cache`] and read back without asking a replica.
//! - Browsers get a storefront and a live cluster dashboard ([`web`], fed by [`dashboard`] and
//!   [`order_stats`]); the API is described by an OpenAPI document ([`openapi`]).

pub mod cache;
pub mod cache_lease;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod order_cache;
pub mod order_stats;
pub mod orders;
pub mod products;
mod routes;
pub mod selector;
mod web;

use std::sync::Arc;

use api::catalog::CatalogClient;
use api::cli::ClusterToken;
use api::client::ServiceClient;
use api::server::{self, ServerHandle};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use api::status::{CacheStatus, FrontendStatus};
use cache::ProductCache;
pub use config::Config;
use dashboard::Dashboard;
pub use error::{FrontendError, StartError};
use metrics::FrontendMetrics;
use order_cache::OrderCache;
use order_stats::OrderStats;
use orders::{ForwarderSettings, OrderForwarder};
use products::ProductReader;
use selector::{PROBE_TIMEOUT, ReplicaSelector};

/// How often the front-end tells every replica its selection again.
const ANNOUNCE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// What every handler sees.
#[derive(Clone)]
pub struct AppState {
    pub cache: Arc<ProductCache>,
    pub order_cache: Arc<OrderCache>,
    pub products: Arc<ProductReader>,
    pub orders: Arc<OrderForwarder>,
    /// `POST /orders` answers per second, for the dashboard.
    pub order_stats: Arc<OrderStats>,
    pub dashboard: Arc<Dashboard>,
}

impl AppState {
    /// What `GET /status` answers.
    pub fn frontend_status(&self) -> FrontendStatus {
        let cache = &self.cache;
        let metrics = cache.metrics();
        let selector = self.orders.selector();
        FrontendStatus {
            selected_replica: selector.selected(),
            reselections: selector.reselections(),
            cache: CacheStatus {
                capacity: cache.capacity(),
                entries: cache.len(),
                hits: metrics.hits.get(),
                misses: metrics.misses.get(),
                evictions: metrics.evictions.get(),
                invalidations: metrics.invalidations.get(),
                lease_valid: cache.lease_live(),
            },
        }
    }
}

/// Starts the front-end: HTTP server, cache lease renewal, first replica selection.
pub async fn serve(config: Config) -> Result<ServerHandle, StartError> {
    // Before anything else: no token and no --insecure is a configuration error.
    let token = config.auth.token().map_err(StartError::Config)?;
    if token.is_none() {
        tracing::warn!("--insecure: internal endpoints accept calls without a token");
    }
    if config.serve.request_timeout <= config.order_retry {
        return Err(StartError::Config(format!(
            "--request-timeout-ms ({} ms) must be above --order-retry-ms ({} ms): an order retried across failover would be cut off",
            config.serve.request_timeout.as_millis(),
            config.order_retry.as_millis()
        )));
    }
    let secret = token.as_ref().map(ClusterToken::expose);
    let mut registry = Registry::with_prefix("frontend");
    let metrics = FrontendMetrics::register(&mut registry);

    let cache = Arc::new(ProductCache::new(config.cache_capacity(), metrics.cache));
    let client = ServiceClient::new(config.attempt_timeout, secret.clone());
    let catalog = CatalogClient::new(config.peers.catalog.clone(), client.clone());
    let products = Arc::new(ProductReader::new(cache.clone(), catalog.clone()));
    let probe = ServiceClient::new(PROBE_TIMEOUT, secret.clone());
    let selector = ReplicaSelector::new(
        &config.peers.nodes,
        probe,
        config.replica_patience,
        metrics.selector,
    );
    let shutdown = CancellationToken::new();
    let (orders, batch_tasks) = OrderForwarder::start(
        selector,
        &config.peers.nodes,
        client,
        ForwarderSettings {
            budget: config.order_retry,
            attempt_timeout: config.attempt_timeout,
            // The shared --batch-max also sizes Raft entries; a request to a replica holds
            // at most what a replica accepts.
            batch_max: (config.batch.batch_max as usize).min(api::order::MAX_ORDER_BATCH),
        },
        metrics.order_retries,
        metrics.order_batch_size,
        shutdown.clone(),
    );
    let orders = Arc::new(orders);

    let order_stats = Arc::new(OrderStats::default());
    let listener = server::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let public_url = match &config.public_url {
        Some(url) => url.clone(),
        None => {
            api::url::parse_base_url(&format!("http://{addr}")).map_err(std::io::Error::other)?
        }
    };
    let state = AppState {
        cache: cache.clone(),
        order_cache: Arc::new(OrderCache::new(
            config.order_cache_capacity,
            metrics.order_cache,
        )),
        products,
        orders: orders.clone(),
        order_stats: order_stats.clone(),
        dashboard: Arc::new(Dashboard::new(
            &config.peers.nodes,
            config.peers.catalog.clone(),
            secret,
            order_stats,
        )),
    };
    let router = routes::router(state.clone(), token).merge(web::router(state));
    let router = server::finish(router, registry, server::process_up());
    let mut handle = server::spawn_with(
        listener,
        router,
        "frontend",
        shutdown.clone(),
        config.serve.limits(),
    )?;
    for task in batch_tasks {
        handle.attach(task);
    }

    let shutdown_selection = shutdown.clone();
    if config.cache_capacity() > 0 {
        handle.attach(tokio::spawn(cache_lease::renew_loop(
            cache, catalog, public_url, shutdown,
        )));
    }
    // Select a replica now rather than on the first order, and keep every replica told.
    handle.attach(tokio::spawn(async move {
        orders
            .selector()
            .maintain(ANNOUNCE_EVERY, shutdown_selection)
            .await;
    }));
    tracing::info!(
        %addr,
        catalog = %config.peers.catalog,
        nodes = %config.peers.nodes,
        cache_capacity = config.cache_capacity(),
        "frontend ready"
    );
    Ok(handle)
}
