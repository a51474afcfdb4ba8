//! Closed-loop order load: `C` workers each place orders back to back for a fixed time; the
//! result is orders/s and the latency distribution at each concurrency level.
//!
//! Against an order replica ([`Target::Node`], `bench orders`) this measures the Raft path:
//! dedup check, catalog buy, batched Raft commit on three RocksDB replicas with fsync, with
//! batching on and off. Against the front-end ([`Target::Frontend`], `bench e2e`) it measures
//! what a client sees end to end.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use api::client::ServiceClient;
use api::frontend::FrontendClient;
use api::order::{Hop, PlaceOrder, ReplicaClient};
use reqwest::Url;
use tokio::time::Instant;

use super::{Bench, Out, ms, run_load};
use crate::LatencyStats;
use crate::lab::status;

/// Stock per toy for the order benchmarks: no order may run out.
pub const ENDLESS_STOCK: &str = "1000000000";

/// `bench orders`: straight to the Raft leader, batching on (256 orders per entry) and off.
pub fn run_leader(bench: &Bench) -> anyhow::Result<bool> {
    bench
        .out
        .heading("orders: straight to the Raft leader, fsync on (3 replicas, RocksDB WAL synced)");
    let csv = bench.results.join("orders.csv");
    let _ = std::fs::remove_file(&csv);
    for (label, batch_max) in [("batching on", "256"), ("batching off", "1")] {
        let at = bench.fresh_cluster(&[
            ("TOYSTORE_INITIAL_STOCK", ENDLESS_STOCK),
            ("TOYSTORE_BATCH_MAX", batch_max),
        ])?;
        bench.raft_facts(&at, "before")?;
        let snapshot = crate::lab::block_on(status::observe(&at.nodes, None, None))?;
        let (leader, _) = snapshot
            .leader()
            .context("no replica reports itself leader")?;
        let url = at
            .nodes
            .get(leader)
            .context("the leader is not one of the replicas")?
            .clone();
        let load = OrdersBench {
            url,
            target: Target::Node,
            concurrency: vec![1, 16, 64],
            seconds: 10.0,
            toy: "Tux".into(),
            token: Some(bench.cluster.token()?),
            label: label.into(),
            csv: Some(csv.clone()),
        };
        run_load(load.run(&bench.out))??;
        bench.raft_facts(&at, "after")?;
    }
    Ok(true)
}

/// `bench e2e`: `POST /orders` through the front-end, which batches and retries.
pub fn run_frontend(bench: &Bench) -> anyhow::Result<bool> {
    bench.out.heading("e2e: POST /orders through the front-end");
    let csv = bench.results.join("e2e.csv");
    let _ = std::fs::remove_file(&csv);
    let at = bench.fresh_cluster(&[("TOYSTORE_INITIAL_STOCK", ENDLESS_STOCK)])?;
    bench.raft_facts(&at, "before")?;
    let load = OrdersBench {
        url: at.frontend.clone(),
        target: Target::Frontend,
        concurrency: vec![1, 32],
        seconds: 10.0,
        toy: "Tux".into(),
        token: None,
        label: "front-end".into(),
        csv: Some(csv),
    };
    run_load(load.run(&bench.out))??;
    bench.raft_facts(&at, "after")?;
    Ok(true)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `POST /orders` on an order replica (internal API: request id in the body).
    Node,
    /// `POST /orders` on the front-end (public API: Idempotency-Key header).
    Frontend,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Self::Node => "node",
            Self::Frontend => "frontend",
        }
    }
}

/// One closed-loop load.
#[derive(Debug)]
pub struct OrdersBench {
    /// Base URL orders are sent to.
    pub url: Url,
    pub target: Target,
    /// Concurrency levels.
    pub concurrency: Vec<usize>,
    /// Seconds measured at each level, after one second of warm-up.
    pub seconds: f64,
    /// The toy every order buys (give the catalog enough stock).
    pub toy: String,
    /// Cluster token, needed for [`Target::Node`].
    pub token: Option<String>,
    /// Label of this run in the table and the CSV (e.g. "batching on").
    pub label: String,
    /// Append one row per level to this CSV file.
    pub csv: Option<PathBuf>,
}

/// One concurrency level's result.
pub struct LevelResult {
    pub concurrency: usize,
    pub orders_per_sec: f64,
    pub stats: LatencyStats,
}

impl OrdersBench {
    pub async fn run(&self, out: &Out) -> anyhow::Result<()> {
        const COLUMNS: [&str; 8] = [
            "label",
            "target",
            "concurrency",
            "orders_per_sec",
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "errors",
        ];
        out.line(format!(
            "{:<16} {:>9} {:>11} {:>14} {:>8} {:>8} {:>8} {:>7}",
            COLUMNS[0],
            COLUMNS[1],
            COLUMNS[2],
            COLUMNS[3],
            COLUMNS[4],
            COLUMNS[5],
            COLUMNS[6],
            COLUMNS[7]
        ));
        let mut csv = String::new();
        for &concurrency in &self.concurrency {
            let result = self.level(concurrency.max(1)).await;
            let s = &result.stats;
            let row = [
                self.label.clone(),
                self.target.name().to_owned(),
                concurrency.to_string(),
                format!("{:.0}", result.orders_per_sec),
                ms(s.quantile(0.5)),
                ms(s.quantile(0.9)),
                ms(s.quantile(0.99)),
                s.errors().to_string(),
            ];
            out.line(format!(
                "{:<16} {:>9} {:>11} {:>14} {:>8} {:>8} {:>8} {:>7}",
                row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7]
            ));
            writeln!(csv, "{}", row.join(","))?;
        }
        if let Some(path) = &self.csv {
            use std::io::Write as _;
            let new = !path.exists();
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            if new {
                writeln!(file, "{}", COLUMNS.join(","))?;
            }
            file.write_all(csv.as_bytes())?;
        }
        Ok(())
    }

    async fn level(&self, concurrency: usize) -> LevelResult {
        let client = ServiceClient::new(
            Duration::from_secs(10),
            self.token.as_deref().map(Arc::from),
        );
        let frontend = FrontendClient::new(self.url.clone(), client.clone());
        let replica = ReplicaClient::new(self.url.clone(), client);
        let start = Instant::now();
        let measure_from = start + Duration::from_secs(1);
        let end = measure_from + Duration::from_secs_f64(self.seconds);
        let workers: Vec<_> = (0..concurrency)
            .map(|worker| {
                let (replica, frontend) = (replica.clone(), frontend.clone());
                let (toy, target) = (self.toy.clone(), self.target);
                tokio::spawn(async move {
                    let mut stats = LatencyStats::new();
                    let mut n = 0u64;
                    while Instant::now() < end {
                        let id = format!("bench-{}-{worker}-{n}", uuid::Uuid::new_v4());
                        n += 1;
                        let sent = Instant::now();
                        let answer = match target {
                            Target::Node => {
                                let order = PlaceOrder {
                                    request_id: id,
                                    name: toy.clone(),
                                    quantity: 1,
                                };
                                replica.place(&order, Hop::default()).await
                            }
                            Target::Frontend => frontend.order(&toy, 1, Some(&id)).await,
                        };
                        // Only orders sent and answered inside the measured window count.
                        if sent < measure_from || Instant::now() > end {
                            continue;
                        }
                        match answer {
                            Ok(_) => stats.record(sent.elapsed()),
                            Err(_) => stats.record_error(),
                        }
                    }
                    stats
                })
            })
            .collect();
        let mut stats = LatencyStats::new();
        for worker in workers {
            if let Ok(worker_stats) = worker.await {
                stats.merge(&worker_stats);
            }
        }
        LevelResult {
            concurrency,
            orders_per_sec: stats.answered() as f64 / self.seconds,
            stats,
        }
    }
}
