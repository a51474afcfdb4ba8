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

    /// The order replicas' dedup retention R, in seconds: how long they remember a request id
    /// after its order (their `--dedup-retention`; give every service the same value). The
    /// catalog derives its reservation rules from it, with the decision horizon H = R/2: a
    /// reservation record decides only while it is younger than H (a duplicate of an older
    /// pending one answers `expired`; a release of an older pending one is refused and its
    /// units stay held); `GET /reservations/pending` lists only pending reservations younger
    /// than H; finished records are forgotten R + H after they finished. Safe while the
    /// clocks of the catalog and the replicas differ by less than R/4 (see `ledger.rs`).
    #[arg(long = "dedup-retention", env = "TOYSTORE_DEDUP_RETENTION_SECS",
          default_value = "86400", value_parser = api::cli::seconds)]
    pub dedup_retention: Duration,

    /// Length of a front-end's cache lease, in milliseconds: how long a front-end that cannot
    /// be reached may delay an acknowledgement, and how long a restarted catalog waits before
    /// its first one when a front-end it knows of cannot be reached (it resets the others).
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
