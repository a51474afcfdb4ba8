//! How the front-end is run: its command line, where every flag also has an environment
//! variable.

use std::net::SocketAddr;
use std::time::Duration;

use api::cluster::NodeAddrs;
use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(name = "frontend", about = "The toy store's front-end service")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "TOYSTORE_FRONTEND_ADDR", default_value = api::defaults::FRONTEND_ADDR)]
    pub listen: SocketAddr,

    /// URL the catalog pushes invalidations to. Default: http:// + the listen address.
    #[arg(long, env = "TOYSTORE_FRONTEND_PUBLIC_URL", value_parser = api::client::parse_base_url)]
    pub public_url: Option<reqwest::Url>,

    /// Base URL of the catalog.
    #[arg(long, env = "TOYSTORE_CATALOG_URL", default_value = api::defaults::CATALOG_URL,
          value_parser = api::client::parse_base_url)]
    pub catalog: reqwest::Url,

    /// Order replicas as ID=URL pairs, comma-separated.
    #[arg(long, env = "TOYSTORE_NODES", default_value = api::defaults::ORDER_NODES)]
    pub nodes: NodeAddrs,

    /// Toys the product cache holds; 0 turns caching off.
    #[arg(long, env = "TOYSTORE_CACHE_CAPACITY", default_value_t = 10)]
    pub cache_capacity: usize,

    /// Committed orders the front-end keeps to answer `GET /orders/{n}` itself; 0 turns it
    /// off. Committed orders never change, so a cached one is never stale.
    #[arg(long, env = "TOYSTORE_ORDER_CACHE_CAPACITY", default_value_t = 100_000)]
    pub order_cache_capacity: usize,

    /// Turn the product cache off (same as --cache-capacity 0).
    #[arg(long, env = "TOYSTORE_NO_CACHE", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub no_cache: bool,

    /// How long an order or order query is retried across failover, in milliseconds, before
    /// the client gets 503.
    #[arg(long = "order-retry-ms", env = "TOYSTORE_ORDER_RETRY_MS", default_value = "5000",
          value_parser = api::cli::millis)]
    pub order_retry: Duration,

    /// How long the selected replica may keep answering that it cannot serve (no leader, no
    /// quorum) before it is treated as failed and another is selected, in milliseconds: one
    /// election timeout (the replicas' --election-max-ms, from the same variable).
    #[arg(long = "replica-patience-ms", env = "TOYSTORE_ELECTION_MAX_MS", default_value = "150",
          value_parser = api::cli::millis)]
    pub replica_patience: Duration,

    /// Most orders sent to a replica in one request; 1 sends each order alone.
    #[arg(long, env = "TOYSTORE_BATCH_MAX", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub batch_max: u64,

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
    pub fn for_test(catalog: reqwest::Url, nodes: NodeAddrs) -> Self {
        let mut config = Self::parse_from(["frontend"]);
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.catalog = catalog;
        config.nodes = nodes;
        // The test replicas' election timeout (`order_raft::Config::for_test`).
        config.replica_patience = Duration::from_millis(1200);
        config
    }

    /// Toys the cache holds; 0 when caching is off.
    pub fn cache_capacity(&self) -> usize {
        if self.no_cache {
            0
        } else {
            self.cache_capacity
        }
    }
}
