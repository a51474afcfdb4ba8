//! Failover gap: how long orders stall when the Raft leader is killed with SIGKILL.
//!
//! One client places orders back to back through the front-end. Each round, once the cluster
//! is steady, the benchmark sends SIGKILL to the leader's process (pid from the cluster's pid
//! file) and measures the time until the first order *sent after the kill* is acknowledged.
//! Then it restarts the node with `cluster/restart.sh` and waits for the replicas to converge
//! before the next round.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use api::client::ServiceClient;
use api::frontend::FrontendClient;
use api::order::ReplicaClient;
use api::status::NodeStatus;
use tokio::time::Instant;

use crate::bench::{Acks, ClusterArgs, ms, order_stream};

#[derive(Debug, clap::Args)]
pub struct FailoverBench {
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// How many times to kill the leader.
    #[arg(long, default_value_t = 10)]
    pub kills: usize,

    /// Append one row per kill to this CSV file.
    #[arg(long)]
    pub csv: Option<PathBuf>,
}

impl FailoverBench {
    pub async fn run(&self) -> anyhow::Result<()> {
        let http = ServiceClient::new(Duration::from_secs(10), None);
        let frontend = FrontendClient::new(self.cluster.frontend.clone(), http.clone());
        let mut gaps = Vec::new();
        let mut rows = String::from("round,killed,selected_before,gap_ms,longest_order_ms\n");
        println!(
            "{:>5} {:>7} {:>9} {:>8} {:>17}",
            "round", "killed", "selected", "gap_ms", "longest_order_ms"
        );
        for round in 1..=self.kills {
            self.wait_steady(&http).await?;
            let selected = frontend.status().await?.selected_replica;
            let acks: Acks = Arc::default();
            let stream = tokio::spawn(order_stream(frontend.clone(), acks.clone()));
            // Let the stream reach a steady pace before the kill.
            tokio::time::sleep(Duration::from_secs(1)).await;

            let leader = self.leader(&http).await?;
            let pid = std::fs::read_to_string(
                self.cluster
                    .home
                    .join("pids")
                    .join(format!("node-{leader}.pid")),
            )?;
            let killed_at = Instant::now();
            let status = Command::new("kill").args(["-9", pid.trim()]).status()?;
            anyhow::ensure!(status.success(), "kill -9 {} failed", pid.trim());

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
            let longest = acks
                .lock()
                .iter()
                .map(|(sent, acked)| *acked - *sent)
                .max()
                .unwrap_or_default();
            let selected = selected.map_or("-".to_string(), |s| s.to_string());
            println!(
                "{round:>5} {leader:>7} {selected:>9} {:>8} {:>17}",
                ms(gap),
                ms(longest)
            );
            rows.push_str(&format!(
                "{round},{leader},{selected},{},{}\n",
                ms(gap),
                ms(longest)
            ));
            gaps.push(gap);

            let restart = Command::new(self.cluster.scripts.join("restart.sh"))
                .arg(leader.to_string())
                .output()?;
            anyhow::ensure!(
                restart.status.success(),
                "restart.sh {leader} failed: {}",
                String::from_utf8_lossy(&restart.stderr)
            );
        }
        gaps.sort();
        if let Some(max) = gaps.last() {
            println!(
                "failover gap over {} kills: median {} ms, max {} ms",
                gaps.len(),
                ms(gaps[gaps.len() / 2]),
                ms(*max)
            );
        }
        if let Some(path) = &self.csv {
            std::fs::write(path, rows)?;
        }
        Ok(())
    }

    async fn status(&self, http: &ServiceClient, id: u64) -> Option<NodeStatus> {
        let replica = ReplicaClient::new(self.cluster.nodes.get(id)?.clone(), http.clone());
        replica.status().await.ok()
    }

    async fn leader(&self, http: &ServiceClient) -> anyhow::Result<u64> {
        for id in self.cluster.nodes.ids() {
            if let Some(status) = self.status(http, id).await
                && status.role == "leader"
            {
                return Ok(id);
            }
        }
        anyhow::bail!("no replica reports itself leader")
    }

    /// Every replica answers, agrees on the leader and has applied the same entries.
    async fn wait_steady(&self, http: &ServiceClient) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut all = Vec::new();
            for id in self.cluster.nodes.ids() {
                all.extend(self.status(http, id).await);
            }
            let steady = all.len() == self.cluster.nodes.len()
                && all.iter().all(|s| {
                    s.leader.is_some()
                        && s.leader == all[0].leader
                        && s.applied_index == all[0].applied_index
                });
            if steady {
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
