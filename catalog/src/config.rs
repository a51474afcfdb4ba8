//! How the catalog is run: its command line, where every flag also has an environment
//! variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use api::cli::{ClusterAuth, RetentionArgs, ServeArgs};
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

    /// --dedup-retention: the order replicas' R, from which the catalog derives its
    /// reservation rules (`ledger.rs`: a duplicate of a pending reservation older than R/2
    /// answers `expired`, a release of one is refused and its units stay held;
    /// `GET /reservations/pending` lists only younger ones).
    #[command(flatten)]
    pub retention: RetentionArgs,

    /// How long a refused reservation (out of stock) is remembered, in milliseconds, so that
    /// the refusal stays the answer for its request id: a retry, or a duplicate still inside
    /// the store, gets it again instead of stock that came back. Keep it well above the
    /// front-end's --order-retry-ms and half the replicas' --reservation-timeout-ms, the
    /// longest a request lives inside the store (`ledger.rs`). Never longer than R + R/2.
    #[arg(long = "refusal-retention-ms", env = "TOYSTORE_REFUSAL_RETENTION_MS",
          default_value = "60000", value_parser = api::cli::millis)]
    pub refusal_retention: Duration,

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

    /// --cluster-token / --insecure: what guards the internal endpoints.
    #[command(flatten)]
    pub auth: ClusterAuth,

    /// Timeouts and the connection cap of the HTTP server.
    #[command(flatten)]
    pub serve: ServeArgs,

    /// Allow --break (verification runs only).
    #[arg(long, env = "TOYSTORE_FAULT_INJECTION", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub fault_injection: bool,

    /// With --fault-injection: break a promise on purpose, to show that verification catches
    /// it (`cluster/verify.sh --break`): `skip-invalidation` pushes no invalidation to the
    /// front-ends, `release-confirmed` puts a confirmed reservation's units back on sale.
    /// Comma-separated or repeated.
    #[arg(
        long = "break",
        env = "TOYSTORE_CATALOG_BREAK",
        value_delimiter = ',',
        value_enum,
        requires = "fault_injection"
    )]
    pub breaks: Vec<crate::faults::Break>,
}

impl Config {
    /// A configuration for tests: an ephemeral port and the given data directory.
    pub fn for_test(data_dir: impl Into<PathBuf>) -> Self {
        let mut config = Self::parse_from(["catalog"]);
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.data_dir = data_dir.into();
        config.lease = Duration::from_millis(1000);
        // In-process tests run without a token unless they set one (`ClusterAuth`).
        config.auth = ClusterAuth::insecure();
        config
    }
}
