//! How the front-end is run: its command line, where every flag also has an environment
//! variable.

use std::net::SocketAddr;
use std::time::Duration;

use api::cli::{BatchArgs, ClusterAuth, PeerArgs, ServeArgs};
use api::cluster::NodeAddrs;
use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(name = "frontend", about = "The toy store's front-end service")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "TOYSTORE_FRONTEND_ADDR", default_value = api::defaults::FRONTEND_ADDR)]
    pub listen: SocketAddr,

    /// URL the catalog pushes invalidations to. Default: http:// + the listen address.
    #[arg(long, env = "TOYSTORE_FRONTEND_PUBLIC_URL", value_parser = api::url::parse_base_url)]
    pub public_url: Option<reqwest::Url>,

    /// --catalog and --nodes: where the catalog and the order replicas are.
    #[command(flatten)]
    pub peers: PeerArgs,

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

    /// --batch-max: most orders sent to a replica in one request (above 1024, 1024).
    #[command(flatten)]
    pub batch: BatchArgs,

    /// Deadline of one forwarded attempt, in milliseconds.
    #[arg(long = "attempt-timeout-ms", env = "TOYSTORE_ATTEMPT_TIMEOUT_MS", default_value = "3000",
          value_parser = api::cli::millis)]
    pub attempt_timeout: Duration,

    /// --cluster-token / --insecure: what guards the internal endpoint and what the
    /// front-end sends on its calls to the catalog and the replicas.
    #[command(flatten)]
    pub auth: ClusterAuth,

    /// Timeouts and the connection cap of the HTTP server.
    #[command(flatten)]
    pub serve: ServeArgs,
}

impl Config {
    /// A configuration for tests: an ephemeral port, the given catalog and replicas.
    pub fn for_test(catalog: reqwest::Url, nodes: NodeAddrs) -> Self {
        let mut config = Self::parse_from(["frontend"]);
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.peers.catalog = catalog;
        config.peers.nodes = nodes;
        // In-process tests run without a token unless they set one (`ClusterAuth`).
        config.auth = ClusterAuth::insecure();
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
