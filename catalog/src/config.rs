//! How the catalog is run: its command line, where every flag also has an environment
//! variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

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

    /// How long a settled (or refused) reservation is remembered, in seconds: a retry of the
    /// same reservation id within it gets the same answer. Pending reservations are kept until
    /// the Raft log settles them, however long that takes.
    #[arg(long = "reservation-retention", env = "TOYSTORE_RESERVATION_RETENTION_SECS",
          default_value = "86400", value_parser = api::cli::seconds)]
    pub retention: Duration,

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
