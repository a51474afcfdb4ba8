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

/// Milliseconds with two decimals, for tables.
pub(crate) fn ms(duration: std::time::Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1000.0)
}
