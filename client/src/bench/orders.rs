//! Closed-loop order load: `C` workers each place orders back to back for a fixed time; the
//! result is orders/s and the latency distribution at each concurrency level.
//!
//! Against an order replica (`--target node`) this measures the Raft path: dedup check,
//! catalog buy, batched Raft commit on three RocksDB replicas with fsync. Against the
//! front-end (`--target frontend`) it measures what a client sees end to end.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use api::client::ServiceClient;
use api::frontend::FrontendClient;
use api::order::{Hop, PlaceOrder, ReplicaClient};
use reqwest::Url;
use tokio::time::Instant;

use crate::LatencyStats;
use crate::bench::ms;
use crate::config::parse_frontend_url;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// `POST /orders` on an order replica (internal API: request id in the body).
    Node,
    /// `POST /orders` on the front-end (public API: Idempotency-Key header).
    Frontend,
}

#[derive(Debug, clap::Args)]
pub struct OrdersBench {
    /// Base URL orders are sent to.
    #[arg(long, value_parser = parse_frontend_url)]
    pub url: Url,

    #[arg(long, value_enum, default_value = "node")]
    pub target: Target,

    /// Concurrency levels, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub concurrency: Vec<usize>,

    /// Seconds measured at each level, after one second of warm-up.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,

    /// The toy every order buys (give the catalog enough stock).
    #[arg(long, default_value = "Tux")]
    pub toy: String,

    /// Cluster token, needed for `--target node`.
    #[arg(long, env = "TOYSTORE_CLUSTER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Label of this run in the table and the CSV (e.g. "batching on").
    #[arg(long, default_value = "")]
    pub label: String,

    /// Append one row per level to this CSV file.
    #[arg(long)]
    pub csv: Option<PathBuf>,
}

/// One concurrency level's result.
pub struct LevelResult {
    pub concurrency: usize,
    pub orders_per_sec: f64,
    pub stats: LatencyStats,
}

impl OrdersBench {
    pub async fn run(&self) -> anyhow::Result<()> {
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
        println!(
            "{:<16} {:>9} {:>11} {:>14} {:>8} {:>8} {:>8} {:>7}",
            COLUMNS[0],
            COLUMNS[1],
            COLUMNS[2],
            COLUMNS[3],
            COLUMNS[4],
            COLUMNS[5],
            COLUMNS[6],
            COLUMNS[7]
        );
        let mut csv = String::new();
        for &concurrency in &self.concurrency {
            let result = self.level(concurrency.max(1)).await;
            let s = &result.stats;
            let row = [
                self.label.clone(),
                format!("{:?}", self.target).to_lowercase(),
                concurrency.to_string(),
                format!("{:.0}", result.orders_per_sec),
                ms(s.quantile(0.5)),
                ms(s.quantile(0.9)),
                ms(s.quantile(0.99)),
                s.errors().to_string(),
            ];
            println!(
                "{:<16} {:>9} {:>11} {:>14} {:>8} {:>8} {:>8} {:>7}",
                row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7]
            );
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
