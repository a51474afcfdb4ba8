//! Catalog restart: how soon orders flow again after the catalog is killed and restarted.
//!
//! Several clients place orders back to back through the front-end. Each round the benchmark
//! sends SIGKILL to the catalog (pid from the cluster's pid file), waits a moment, starts it
//! again with `cluster/restart.sh catalog`, and measures, from the moment the restarted
//! catalog first answers `/health`, the time until the next order is acknowledged; and the
//! longest wait of any order (those sent during the outage are retried by the front-end). At
//! the end, once no reservation is pending, it checks that the catalog's accounts add up and
//! that the units sold are exactly what the replicas' orders hold.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use api::catalog::CatalogClient;
use api::client::ServiceClient;
use api::frontend::FrontendClient;
use api::order::ReplicaClient;
use reqwest::Url;
use tokio::time::Instant;

use crate::bench::{Acks, ClusterArgs, ms, order_stream};

#[derive(Debug, clap::Args)]
pub struct CatalogRestartBench {
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// The catalog (its `/health` and, with the cluster token, its accounts).
    #[arg(
        long,
        env = "TOYSTORE_CATALOG",
        default_value = "http://127.0.0.1:8100"
    )]
    pub catalog: Url,

    /// How many times to kill the catalog.
    #[arg(long, default_value_t = 5)]
    pub kills: usize,

    /// How long the catalog stays down, in milliseconds.
    #[arg(long, default_value_t = 1500)]
    pub down_ms: u64,

    /// Concurrent clients placing orders.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
}

impl CatalogRestartBench {
    pub async fn run(&self) -> anyhow::Result<()> {
        let token = std::fs::read_to_string(self.cluster.home.join("cluster.token"))
            .ok()
            .map(|t| Arc::from(t.trim()));
        let http = ServiceClient::new(Duration::from_secs(10), token);
        let probe = ServiceClient::new(Duration::from_millis(200), None);
        let frontend = FrontendClient::new(self.cluster.frontend.clone(), http.clone());
        let health = self.catalog.join("health")?;
        let mut resumes = Vec::new();
        println!(
            "{:>5} {:>10} {:>22} {:>17}",
            "round", "health_ms", "resume_after_health_ms", "longest_order_ms"
        );
        for round in 1..=self.kills {
            let acks: Acks = Arc::default();
            let streams: Vec<_> = (0..self.clients)
                .map(|_| tokio::spawn(order_stream(frontend.clone(), acks.clone())))
                .collect();
            tokio::time::sleep(Duration::from_secs(1)).await;

            let pid = std::fs::read_to_string(self.cluster.home.join("pids").join("catalog.pid"))?;
            let killed_at = Instant::now();
            let status = Command::new("kill").args(["-9", pid.trim()]).status()?;
            anyhow::ensure!(status.success(), "kill -9 {} failed", pid.trim());
            tokio::time::sleep(Duration::from_millis(self.down_ms)).await;

            let mut restart = tokio::process::Command::new(self.cluster.scripts.join("restart.sh"))
                .arg("catalog")
                .stdout(std::process::Stdio::null())
                .spawn()?;
            let deadline = Instant::now() + Duration::from_secs(60);
            let healthy_at = loop {
                if probe.get_json::<serde_json::Value>(&health).await.is_ok() {
                    break Instant::now();
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "the catalog did not answer /health within 60 s"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            };
            let resumed_at = loop {
                let first = acks
                    .lock()
                    .iter()
                    .map(|(_, acked)| *acked)
                    .filter(|acked| *acked >= healthy_at)
                    .min();
                if let Some(acked) = first {
                    break acked;
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "no order acknowledged within 60 s of the restart"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            };
            anyhow::ensure!(restart.wait().await?.success(), "restart.sh catalog failed");
            tokio::time::sleep(Duration::from_millis(500)).await;
            for stream in &streams {
                stream.abort();
            }
            let longest = acks
                .lock()
                .iter()
                .map(|(sent, acked)| *acked - *sent)
                .max()
                .unwrap_or_default();
            let resume = resumed_at - healthy_at;
            println!(
                "{round:>5} {:>10} {:>22} {:>17}",
                ms(healthy_at - killed_at),
                ms(resume),
                ms(longest)
            );
            resumes.push(resume);
        }
        resumes.sort();
        if let Some(max) = resumes.last() {
            println!(
                "orders resumed after the catalog's /health over {} restarts: median {} ms, max {} ms",
                resumes.len(),
                ms(resumes[resumes.len() / 2]),
                ms(*max)
            );
        }
        self.check_accounts(&http).await
    }

    /// Once nothing is pending: every toy's accounts add up, and the units sold are what the
    /// replicas' orders hold.
    async fn check_accounts(&self, http: &ServiceClient) -> anyhow::Result<()> {
        let catalog = CatalogClient::new(self.catalog.clone(), http.clone());
        let deadline = Instant::now() + Duration::from_secs(60);
        let stock = loop {
            let stock = catalog.stock().await?;
            if stock.iter().all(|toy| toy.pending == 0) {
                break stock;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "reservations still pending 60 s after the last restart"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        // The longest history among the replicas: one that lags holds a prefix of it.
        let mut orders = Vec::new();
        for replica in ReplicaClient::all(&self.cluster.nodes, http).values() {
            if let Ok(held) = replica.all_local_orders().await
                && held.len() > orders.len()
            {
                orders = held;
            }
        }
        for toy in &stock {
            let sold = toy.initial + toy.restocked - u64::from(toy.quantity) - toy.pending;
            let ordered: u64 = orders
                .iter()
                .filter(|o| o.name == toy.name)
                .map(|o| u64::from(o.quantity))
                .sum();
            anyhow::ensure!(
                sold == ordered,
                "{}: the catalog sold {sold} units, the orders hold {ordered}",
                toy.name
            );
        }
        println!(
            "accounts add up: {} orders, every unit sold belongs to one",
            orders.len()
        );
        Ok(())
    }
}
