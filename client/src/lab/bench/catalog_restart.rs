//! Catalog restart: how soon orders flow again after the catalog is killed and restarted.
//!
//! Several clients place orders back to back through the front-end. Each round the benchmark
//! sends SIGKILL to the catalog (pid from the cluster's pid file), waits a moment, starts it
//! again with `cluster/restart.sh catalog`, and measures, from the moment the restarted
//! catalog first answers `/health`, the time until the next order is acknowledged; and the
//! longest wait of any order (those sent during the outage are retried by the front-end). At
//! the end, once no reservation is pending, it checks that the catalog's accounts add up and
//! that the units sold are exactly what the replicas' orders hold.

use std::sync::Arc;
use std::time::Duration;

use api::catalog::CatalogClient;
use api::client::ServiceClient;
use api::cluster::NodeAddrs;
use api::frontend::FrontendClient;
use api::order::ReplicaClient;
use reqwest::Url;
use tokio::time::Instant;

use super::orders::ENDLESS_STOCK;
use super::{Acks, Bench, Out, live_pid, longest, ms, order_stream, run_load, spread};
use crate::lab::local::LocalCluster;
use crate::lab::process::signal;

/// `bench catalog`: five catalog kills under eight clients, each down 1.5 s.
pub fn run(bench: &Bench) -> anyhow::Result<bool> {
    bench
        .out
        .heading("catalog: kill -9 of the catalog 5 times under load, restarted 1.5 s later");
    let at = bench.fresh_cluster(&[("TOYSTORE_INITIAL_STOCK", ENDLESS_STOCK)])?;
    let restarts = CatalogRestartBench {
        frontend: at.frontend,
        catalog: at.catalog,
        nodes: at.nodes,
        http: bench.http(Duration::from_secs(10))?,
        cluster: bench.cluster.clone(),
        kills: 5,
        down: Duration::from_millis(1500),
        clients: 8,
    };
    run_load(restarts.run(&bench.out))??;
    Ok(true)
}

pub struct CatalogRestartBench {
    /// The front-end orders go through.
    pub frontend: Url,
    /// The catalog (its `/health` and, with the cluster token, its accounts).
    pub catalog: Url,
    pub nodes: NodeAddrs,
    /// A client carrying the cluster token.
    pub http: ServiceClient,
    /// Its pid file and restart.sh.
    pub cluster: LocalCluster,
    /// How many times to kill the catalog.
    pub kills: usize,
    /// How long the catalog stays down.
    pub down: Duration,
    /// Concurrent clients placing orders.
    pub clients: usize,
}

impl CatalogRestartBench {
    pub async fn run(&self, out: &Out) -> anyhow::Result<()> {
        let http = &self.http;
        let probe = CatalogClient::new(
            self.catalog.clone(),
            ServiceClient::new(Duration::from_millis(200), None),
        );
        let frontend = FrontendClient::new(self.frontend.clone(), http.clone());
        let mut resumes = Vec::new();
        out.line(format!(
            "{:>5} {:>10} {:>22} {:>17}",
            "round", "health_ms", "resume_after_health_ms", "longest_order_ms"
        ));
        for round in 1..=self.kills {
            let acks: Acks = Arc::default();
            let streams: Vec<_> = (0..self.clients)
                .map(|_| tokio::spawn(order_stream(frontend.clone(), acks.clone())))
                .collect();
            tokio::time::sleep(Duration::from_secs(1)).await;

            let pid = live_pid(&self.cluster, "catalog")?;
            let killed_at = Instant::now();
            signal(pid, "KILL");
            tokio::time::sleep(self.down).await;

            // On a thread of its own: the orders keep flowing while it waits for the catalog.
            let cluster = self.cluster.clone();
            let restart =
                tokio::task::spawn_blocking(move || cluster.script("restart.sh", &["catalog"]));
            let deadline = Instant::now() + Duration::from_secs(60);
            let healthy_at = loop {
                if probe.health().await.is_ok() {
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
            restart.await??;
            tokio::time::sleep(Duration::from_millis(500)).await;
            for stream in &streams {
                stream.abort();
            }
            let longest = longest(&acks);
            let resume = resumed_at - healthy_at;
            out.line(format!(
                "{round:>5} {:>10} {:>22} {:>17}",
                ms(healthy_at - killed_at),
                ms(resume),
                ms(longest)
            ));
            resumes.push(resume);
        }
        if let Some(spread) = spread(&mut resumes) {
            out.line(format!(
                "orders resumed after the catalog's /health over {} restarts: {spread}",
                resumes.len()
            ));
        }
        self.check_accounts(http, out).await
    }

    /// Once nothing is pending: every toy's accounts add up, and the units sold are what the
    /// replicas' orders hold.
    async fn check_accounts(&self, http: &ServiceClient, out: &Out) -> anyhow::Result<()> {
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
        for replica in ReplicaClient::all(&self.nodes, http).values() {
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
        out.line(format!(
            "accounts add up: {} orders, every unit sold belongs to one",
            orders.len()
        ));
        Ok(())
    }
}
