//! `toystore-bench`: the project's benchmarks. Timing lives here, never in tests.
//!
//! - [`orders`]: closed-loop order load at several concurrency levels, against an order
//!   replica (the Raft path) or the front-end (end to end).
//! - [`bare`]: a bare axum handler serving a product body, the baseline the cached front-end
//!   is compared with (`cluster/bench.sh cache` drives both with `wrk`).
//! - [`failover`]: the gap between kill -9 of the Raft leader and the next acknowledged order.
//! - [`catalog_restart`]: how soon orders flow after kill -9 and restart of the catalog.
//!
//! `cluster/bench.sh` starts the clusters these run against and records their output.

pub mod bare;
pub mod catalog_restart;
pub mod failover;
pub mod orders;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "toystore-bench",
    about = "Benchmarks of the toy store (see cluster/bench.sh)"
)]
pub struct BenchCli {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Orders/s and latency at several concurrency levels.
    Orders(orders::OrdersBench),
    /// Serve a fixed product body from a bare axum handler.
    BareServer(bare::BareServer),
    /// Kill the Raft leader repeatedly and measure how long orders stall.
    Failover(failover::FailoverBench),
    /// Kill and restart the catalog repeatedly and measure how soon orders flow again.
    CatalogRestart(catalog_restart::CatalogRestartBench),
}

/// The running cluster a kill-and-restart benchmark works on.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// The front-end orders go through.
    #[arg(long, default_value = "http://127.0.0.1:8000", value_parser = crate::config::parse_frontend_url)]
    pub frontend: reqwest::Url,

    /// The order replicas.
    #[arg(long, env = "TOYSTORE_NODES", default_value = api::defaults::ORDER_NODES)]
    pub nodes: api::cluster::NodeAddrs,

    /// The cluster's run directory (pid files under pids/, the token in cluster.token).
    #[arg(long, env = "TOYSTORE_HOME")]
    pub home: std::path::PathBuf,

    /// The cluster scripts directory (for restart.sh).
    #[arg(long, default_value = "cluster")]
    pub scripts: std::path::PathBuf,
}

/// Orders acknowledged so far: (sent, acknowledged).
pub(crate) type Acks =
    std::sync::Arc<parking_lot::Mutex<Vec<(tokio::time::Instant, tokio::time::Instant)>>>;

/// Places orders one after another until aborted, recording when each was sent and answered.
pub(crate) async fn order_stream(frontend: api::frontend::FrontendClient, acks: Acks) {
    loop {
        let sent = tokio::time::Instant::now();
        if frontend.order("Tux", 1, None).await.is_ok() {
            acks.lock().push((sent, tokio::time::Instant::now()));
        }
    }
}

/// Milliseconds with two decimals, for tables.
pub(crate) fn ms(duration: std::time::Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1000.0)
}
