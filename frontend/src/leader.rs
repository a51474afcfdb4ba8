//! `LeaderSelector`: which order replica the front-end talks to, chosen the lab's way.
//!
//! Ping (`GET /health`) the replica with the highest id; if it answers, it is selected and
//! every replica is told (`POST /leader`); otherwise try the next highest, until one answers.
//! The selection is redone whenever the selected replica fails to answer a forwarded request.
//! The selected replica need not be the Raft leader: it forwards to the leader itself.

use std::time::Duration;

use api::client::ServiceClient;
use api::cluster::NodeAddrs;
use api::order::LeaderNotice;
use futures::future::join_all;
use parking_lot::RwLock;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::error::FrontendError;

/// Metrics of the selection.
#[derive(Clone, Default)]
pub struct SelectorMetrics {
    /// Selections made after the first one.
    pub reselections: Counter,
    /// Id of the selected replica (0: none).
    pub selected: Gauge,
}

pub struct LeaderSelector {
    nodes: NodeAddrs,
    /// Short deadlines: a replica that does not answer a ping quickly is passed over.
    probe: ServiceClient,
    selected: RwLock<Option<u64>>,
    /// One selection at a time: many requests failing together must not ping-storm.
    selecting: tokio::sync::Mutex<()>,
    metrics: SelectorMetrics,
}

impl LeaderSelector {
    pub fn new(nodes: NodeAddrs, probe: ServiceClient, metrics: SelectorMetrics) -> Self {
        Self {
            nodes,
            probe,
            selected: RwLock::new(None),
            selecting: tokio::sync::Mutex::new(()),
            metrics,
        }
    }

    pub fn selected(&self) -> Option<u64> {
        *self.selected.read()
    }

    pub fn reselections(&self) -> u64 {
        self.metrics.reselections.get()
    }

    /// The selected replica, selecting one first if there is none.
    pub async fn current(&self) -> Result<(u64, String), FrontendError> {
        if let Some(id) = self.selected()
            && let Some(url) = self.nodes.get(id)
        {
            return Ok((id, url.to_string()));
        }
        self.select(None).await
    }

    /// Reports that `failed` did not answer a forwarded request, and selects again unless
    /// another request already moved the selection away from it.
    pub async fn failed(&self, failed: u64) -> Result<(u64, String), FrontendError> {
        self.select(Some(failed)).await
    }

    async fn select(&self, failed: Option<u64>) -> Result<(u64, String), FrontendError> {
        let _one_at_a_time = self.selecting.lock().await;
        let previous = self.selected();
        // Someone selected while we waited for the lock: use that, unless it is the node that
        // just failed us.
        if let Some(id) = previous
            && previous != failed
            && let Some(url) = self.nodes.get(id)
        {
            return Ok((id, url.to_string()));
        }
        for (id, url) in self.nodes.iter().rev() {
            let ping = self.probe.get(&format!("{url}/health"));
            if self.probe.call::<serde_json::Value>(ping).await.is_ok() {
                *self.selected.write() = Some(id);
                self.metrics.selected.set(id as i64);
                if previous.is_some() {
                    self.metrics.reselections.inc();
                }
                tracing::info!(selected = id, ?previous, "order replica selected");
                self.notify_all(id).await;
                return Ok((id, url.to_string()));
            }
            tracing::debug!(id, "order replica did not answer its health check");
        }
        *self.selected.write() = None;
        self.metrics.selected.set(0);
        Err(FrontendError::NoOrderReplica)
    }

    /// Tells every replica which one was selected. Best effort: a replica that is down learns
    /// of the next selection instead.
    async fn notify_all(&self, leader_id: u64) {
        let notice = LeaderNotice { leader_id };
        let sends = self.nodes.iter().map(|(id, url)| {
            let request = self.probe.post(&format!("{url}/leader")).json(&notice);
            async move {
                if let Err(err) = self.probe.call::<serde_json::Value>(request).await {
                    tracing::debug!(id, %err, "could not tell a replica about the selection");
                }
            }
        });
        join_all(sends).await;
    }
}

/// Ping deadline for health checks and notifications.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
