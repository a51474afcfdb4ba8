//! The front-end: the toy store's public HTTP API.
//!
//! - Product queries ([`products`]) go through an LRU cache ([`cache`]) kept correct by the
//!   catalog's invalidation push and a lease ([`cache_lease`]).
//! - Orders and order queries ([`orders`]) go to the order replica picked by
//!   [`selector::ReplicaSelector`] and are retried with the same request id across failover;
//!   committed orders are kept in [`order_cache`] and read back without asking a replica.

pub mod cache;
pub mod cache_lease;
pub mod config;
pub mod error;
pub mod metrics;
pub mod order_cache;
pub mod orders;
pub mod products;
mod routes;
pub mod selector;

use std::sync::Arc;

use api::catalog::CatalogClient;
use api::client::ServiceClient;
use api::server::{self, ServerHandle};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use cache::ProductCache;
pub use config::Config;
pub use error::{FrontendError, StartError};
use metrics::FrontendMetrics;
use order_cache::OrderCache;
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
}

/// Starts the front-end: HTTP server, cache lease renewal, first replica selection.
pub async fn serve(config: Config) -> Result<ServerHandle, StartError> {
    let token: Option<Arc<str>> = config.cluster_token.as_deref().map(Arc::from);
    let mut registry = Registry::with_prefix("frontend");
    let metrics = FrontendMetrics::register(&mut registry);

    let cache = Arc::new(ProductCache::new(config.cache_capacity(), metrics.cache));
    let client = ServiceClient::new(config.attempt_timeout, token.clone());
    let catalog = CatalogClient::new(config.catalog.clone(), client.clone());
    let products = Arc::new(ProductReader::new(cache.clone(), catalog.clone()));
    let probe = ServiceClient::new(PROBE_TIMEOUT, token.clone());
    let selector = ReplicaSelector::new(
        &config.nodes,
        probe,
        config.replica_patience,
        metrics.selector,
    );
    let shutdown = CancellationToken::new();
    let (orders, batch_tasks) = OrderForwarder::start(
        selector,
        &config.nodes,
        client,
        ForwarderSettings {
            budget: config.order_retry,
            attempt_timeout: config.attempt_timeout,
            batch_max: config.batch_max as usize,
        },
        metrics.order_retries,
        metrics.order_batch_size,
        shutdown.clone(),
    );
    let orders = Arc::new(orders);

    let listener = server::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let public_url = match &config.public_url {
        Some(url) => url.clone(),
        None => {
            api::client::parse_base_url(&format!("http://{addr}")).map_err(std::io::Error::other)?
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
    };
    let router = server::finish(routes::router(state, token), registry, server::process_up());
    let mut handle = server::spawn(listener, router, "frontend", shutdown.clone())?;
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
        catalog = %config.catalog,
        nodes = %config.nodes,
        cache_capacity = config.cache_capacity(),
        "frontend ready"
    );
    Ok(handle)
}
