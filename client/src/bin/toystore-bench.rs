//! `toystore-bench`: the project's benchmarks (see `client::bench` and `cluster/bench.sh`).

use clap::Parser;
use client::bench::{BenchCli, BenchCommand};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match BenchCli::parse().command {
        BenchCommand::Orders(bench) => bench.run().await,
        BenchCommand::BareServer(server) => Ok(server.run().await?),
        BenchCommand::Failover(bench) => bench.run().await,
        BenchCommand::CatalogRestart(bench) => bench.run().await,
    }
}
