//! Failover gap: how long orders stall when the Raft leader is killed with SIGKILL.
//!
//! One client places orders back to back through the front-end. Each round, once the cluster
//! is steady, the benchmark sends SIGKILL to the leader's process (pid from the cluster's pid
//! file) and measures the time until the first order *sent after the kill* is acknowledged.
//! Then it restarts the node with `cluster/restart.sh` and waits for the replicas to converge
//! before the next round.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use api::client::ServiceClient;
use api::cluster::NodeAddrs;
use api::frontend::FrontendClient;
use tokio::time::Instant;

use super::orders::ENDLESS_STOCK;
use super::{Acks, Bench, Out, live_pid, longest, ms, order_stream, run_load, spread};
use crate::lab::local::LocalCluster;
use crate::lab::process::signal;
use crate::lab::status;

/// `bench failover`: ten leader kills on a fresh cluster.
pub fn run(bench: &Bench) -> anyhow::Result<bool> {
    bench
        .out
        .heading("failover: kill -9 of the Raft leader, 10 times");
    let at = bench.fresh_cluster(&[("TOYSTORE_INITIAL_STOCK", ENDLESS_STOCK)])?;
    let failover = FailoverBench {
        frontend: at.frontend,
        nodes: at.nodes,
        cluster: bench.cluster.clone(),
        kills: 10,
        csv: Some(bench.results.join("failover.csv")),
    };
    run_load(failover.run(&bench.out))??;
    Ok(true)
}

pub struct FailoverBench {
    /// The front-end orders go through.
    pub frontend: reqwest::Url,
    pub nodes: NodeAddrs,
    /// Its pid files and restart.sh.
    pub cluster: LocalCluster,
    /// How many times to kill the leader.
    pub kills: usize,
    /// One row per kill.
    pub csv: Option<PathBuf>,
}

impl FailoverBench {
    pub async fn run(&self, out: &Out) -> anyhow::Result<()> {
        let http = ServiceClient::new(Duration::from_secs(10), None);
        let frontend = FrontendClient::new(self.frontend.clone(), http.clone());
        let mut gaps = Vec::new();
        let mut rows = String::from("round,killed,selected_before,gap_ms,longest_order_ms\n");
        out.line(format!(
            "{:>5} {:>7} {:>9} {:>8} {:>17}",
            "round", "killed", "selected", "gap_ms", "longest_order_ms"
        ));
        for round in 1..=self.kills {
            self.wait_steady().await?;
            let selected = frontend.status().await?.selected_replica;
            let acks: Acks = Arc::default();
            let stream = tokio::spawn(order_stream(frontend.clone(), acks.clone()));
            // Let the stream reach a steady pace before the kill.
            tokio::time::sleep(Duration::from_secs(1)).await;

            let (leader, _) = status::observe(&self.nodes, None, None)
                .await
                .leader()
                .context("no replica reports itself leader")?;
            let pid = live_pid(&self.cluster, &format!("node-{leader}"))?;
            let killed_at = Instant::now();
            signal(pid, "KILL");

            let deadline = killed_at + Duration::from_secs(30);
            let gap = loop {
                let first_after = acks
                    .lock()
                    .iter()
                    .find(|(sent, _)| *sent > killed_at)
                    .map(|(_, acked)| *acked);
                if let Some(acked) = first_after {
                    break acked - killed_at;
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "no order acknowledged within 30 s of the kill"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            };
            // Keep the stream going a little to see every order the kill delayed.
            tokio::time::sleep(Duration::from_millis(500)).await;
            stream.abort();
            let longest = longest(&acks);
            let selected = selected.map_or("-".to_string(), |s| s.to_string());
            out.line(format!(
                "{round:>5} {leader:>7} {selected:>9} {:>8} {:>17}",
                ms(gap),
                ms(longest)
            ));
            rows.push_str(&format!(
                "{round},{leader},{selected},{},{}\n",
                ms(gap),
                ms(longest)
            ));
            gaps.push(gap);

            let cluster = self.cluster.clone();
            tokio::task::spawn_blocking(move || {
                cluster.script("restart.sh", &[&leader.to_string()])
            })
            .await??;
        }
        if let Some(spread) = spread(&mut gaps) {
            out.line(format!("failover gap over {} kills: {spread}", gaps.len()));
        }
        if let Some(path) = &self.csv {
            std::fs::write(path, rows)?;
        }
        Ok(())
    }

    /// Every replica answers and names the one leader, and all have applied the same
    /// entries.
    async fn wait_steady(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let snapshot = status::observe(&self.nodes, None, None).await;
            if snapshot.settled_leader().is_some() && snapshot.replicas_agree() == Some(true) {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the cluster did not become steady within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
