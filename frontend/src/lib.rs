//! The front-end: the toy store's public HTTP API.
//!
//! - Product queries go through an LRU cache ([`cache`]) kept correct by the catalog's
//!   invalidation push and a lease ([`lease`]).
//! - Orders and order queries go to the order replica picked by [`leader::LeaderSelector`]
//!   and are retried with the same request id across failover ([`orders`]).

pub mod cache;
pub mod error;
pub mod leader;
pub mod lease;
pub mod orders;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use api::client::ServiceClient;
use api::cluster::NodeAddrs;
use api::server::{self, ServerHandle};
use clap::Parser;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

use cache::{CacheMetrics, ProductCache};
pub use error::FrontendError;
use leader::{LeaderSelector, PROBE_TIMEOUT, SelectorMetrics};
use orders::OrderForwarder;

/// How the front-end is run. Every flag has an environment variable.
#[derive(Debug, Clone, Parser)]
#[command(name = "frontend", about = "The toy store's front-end service")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "TOYSTORE_FRONTEND_ADDR", default_value = api::defaults::FRONTEND_ADDR)]
    pub listen: SocketAddr,

    /// URL the catalog pushes invalidations to. Default: http:// + the listen address.
    #[arg(long, env = "TOYSTORE_FRONTEND_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Base URL of the catalog.
    #[arg(
        long,
        env = "TOYSTORE_CATALOG_URL",
        default_value = "http://127.0.0.1:8100"
    )]
    pub catalog: reqwest::Url,

    /// Order replicas as ID=URL pairs, comma-separated.
    #[arg(long, env = "TOYSTORE_NODES", default_value = api::defaults::ORDER_NODES)]
    pub nodes: NodeAddrs,

    /// Toys the product cache holds; 0 turns caching off.
    #[arg(long, env = "TOYSTORE_CACHE_CAPACITY", default_value_t = 10)]
    pub cache_capacity: usize,

    /// Turn the product cache off (same as --cache-capacity 0).
    #[arg(long, env = "TOYSTORE_NO_CACHE", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub no_cache: bool,

    /// How long an order or order query is retried across failover, in milliseconds, before
    /// the client gets 503.
    #[arg(long = "order-retry-ms", env = "TOYSTORE_ORDER_RETRY_MS", default_value = "5000",
          value_parser = api::cli::millis)]
    pub order_retry: Duration,

    /// Deadline of one forwarded attempt, in milliseconds.
    #[arg(long = "attempt-timeout-ms", env = "TOYSTORE_ATTEMPT_TIMEOUT_MS", default_value = "3000",
          value_parser = api::cli::millis)]
    pub attempt_timeout: Duration,

    /// Shared secret for internal endpoints (X-Cluster-Token). Unset: not checked.
    #[arg(long, env = "TOYSTORE_CLUSTER_TOKEN", hide_env_values = true)]
    pub cluster_token: Option<String>,
}

impl Config {
    /// A configuration for tests: an ephemeral port, the given catalog and replicas.
    pub fn for_test(catalog: &str, nodes: NodeAddrs) -> Result<Self, FrontendError> {
        let mut config = Self::parse_from(["frontend"]);
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.catalog = catalog
            .parse()
            .map_err(|err| FrontendError::BadRequest(format!("bad catalog URL: {err}")))?;
        config.nodes = nodes;
        Ok(config)
    }

    fn cache_capacity(&self) -> usize {
        if self.no_cache {
            0
        } else {
            self.cache_capacity
        }
    }
}

/// What every handler sees.
#[derive(Clone)]
pub struct AppState {
    pub cache: Arc<ProductCache>,
    pub orders: Arc<OrderForwarder>,
    pub client: ServiceClient,
    pub catalog_url: reqwest::Url,
}

impl AppState {
    /// The catalog URL for a path made of `segments`.
    pub fn catalog_endpoint(&self, segments: &[&str]) -> reqwest::Url {
        api::client::endpoint(&self.catalog_url, segments)
    }
}

/// Starts the front-end: HTTP server, cache lease renewal, first leader selection.
pub async fn serve(config: Config) -> Result<ServerHandle, FrontendError> {
    let token: Option<Arc<str>> = config.cluster_token.as_deref().map(Arc::from);
    let mut registry = Registry::with_prefix("frontend");

    let cache_metrics = CacheMetrics::default();
    registry.register(
        "cache_hits",
        "Product queries served from the cache",
        cache_metrics.hits.clone(),
    );
    registry.register(
        "cache_misses",
        "Product queries sent to the catalog",
        cache_metrics.misses.clone(),
    );
    registry.register(
        "cache_evictions",
        "Entries evicted by the LRU policy",
        cache_metrics.evictions.clone(),
    );
    registry.register(
        "cache_invalidations",
        "Cached entries removed by a catalog invalidation",
        cache_metrics.invalidations.clone(),
    );
    let cache = Arc::new(ProductCache::new(config.cache_capacity(), cache_metrics));

    let selector_metrics = SelectorMetrics::default();
    registry.register(
        "leader_reselections",
        "Order replica selections after the first",
        selector_metrics.reselections.clone(),
    );
    registry.register(
        "selected_replica",
        "Id of the selected order replica (0: none)",
        selector_metrics.selected.clone(),
    );
    let retries = Counter::default();
    registry.register(
        "order_retries",
        "Forwarded order requests sent again",
        retries.clone(),
    );

    let probe = ServiceClient::new(PROBE_TIMEOUT, token.clone());
    let selector = LeaderSelector::new(config.nodes.clone(), probe, selector_metrics);
    let client = ServiceClient::new(config.attempt_timeout, token.clone());
    let orders = Arc::new(OrderForwarder::new(
        selector,
        client.clone(),
        config.order_retry,
        config.attempt_timeout,
        retries,
    ));

    let listener = server::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let catalog_url = config.catalog.clone();
    let state = AppState {
        cache: cache.clone(),
        orders: orders.clone(),
        client: client.clone(),
        catalog_url: catalog_url.clone(),
    };
    let router = server::finish(routes::router(state, token), registry);
    let mut handle = server::spawn(listener, router, "frontend")?;

    if config.cache_capacity() > 0 {
        let catalog = catalog_url.as_str().trim_end_matches('/').to_string();
        handle.attach(tokio::spawn(lease::renew_loop(
            cache,
            client,
            catalog,
            public_url,
            handle.shutdown_token(),
        )));
    }
    // Select a replica now rather than on the first order; failure is retried then.
    tokio::spawn(async move {
        if let Err(err) = orders.selector().current().await {
            tracing::warn!(%err, "no order replica selected yet");
        }
    });
    tracing::info!(
        %addr,
        catalog = %catalog_url,
        nodes = %config.nodes,
        cache_capacity = config.cache_capacity(),
        "frontend ready"
    );
    Ok(handle)
}
