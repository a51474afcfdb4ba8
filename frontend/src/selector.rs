//! `ReplicaSelector`: which order replica the front-end talks to, chosen the lab's way.
//!
//! Ping (`GET /health`) the replica with the highest id; if it answers, it is selected and
//! every replica is told (`POST /selection`); otherwise try the next highest, until one
//! answers. A replica's `/health` answers only when it can serve orders now (it leads with a
//! quorum, or follows a leader it hears), so selection passes over replicas that are cut off
//! or broken. A higher replica that answers "not yet" while a lower one is ready is waited for
//! first, for one election timeout: at a cold start or after an election the replicas hear
//! the new leader milliseconds apart, and the rule is the highest id, not the first one ready.
//! The selection is redone whenever the selected replica fails to answer a forwarded request,
//! or keeps saying it cannot serve for longer than one election timeout. The selected replica
//! then takes over Raft leadership, so orders reach the leader directly; until it has, it
//! forwards them to the leader.
//!
//! The rules are in [`rules`]; this module pings, announces, and keeps their state.

mod rules;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use api::client::ServiceClient;
use api::cluster::NodeAddrs;
use api::order::{ReplicaClient, Selection};
use futures::future::join_all;
use parking_lot::{Mutex, RwLock};
use tokio::time::Instant;

use crate::error::FrontendError;
use crate::metrics::SelectorMetrics;
use rules::{Health, Pass, Streak, Verdict};

pub struct ReplicaSelector {
    /// Every replica, reached with short deadlines: a replica that does not answer a ping
    /// quickly is passed over.
    probes: BTreeMap<u64, ReplicaClient>,
    selected: RwLock<Option<u64>>,
    /// Whether any selection was made yet (later ones count as reselections).
    selected_once: AtomicBool,
    /// One selection at a time: many requests failing together must not ping-storm.
    selecting: tokio::sync::Mutex<()>,
    /// The replica that answered "cannot serve" without an answer since, and since when.
    cannot_serve: Mutex<Streak>,
    /// The higher replica that answered "not yet" while a lower one could serve, and since when
    /// the selection has waited for it.
    settling: Mutex<Streak>,
    /// How long a replica may keep answering "cannot serve" before it counts as failed: one
    /// election timeout.
    patience: Duration,
    metrics: SelectorMetrics,
}

impl ReplicaSelector {
    pub fn new(
        nodes: &NodeAddrs,
        probe: ServiceClient,
        patience: Duration,
        metrics: SelectorMetrics,
    ) -> Self {
        Self {
            probes: ReplicaClient::all(nodes, &probe),
            selected: RwLock::new(None),
            selected_once: AtomicBool::new(false),
            selecting: tokio::sync::Mutex::new(()),
            cannot_serve: Mutex::default(),
            settling: Mutex::default(),
            patience,
            metrics,
        }
    }

    /// `id` answered a request.
    pub fn served(&self, id: u64) {
        self.cannot_serve.lock().end_for(id);
    }

    /// `id` answered "cannot serve". True when it has done so, with no answer in between, for
    /// longer than the patience: the caller should report it failed.
    pub fn cannot_serve(&self, id: u64) -> bool {
        self.cannot_serve
            .lock()
            .outlasts(id, self.patience, Instant::now())
    }

    pub fn selected(&self) -> Option<u64> {
        *self.selected.read()
    }

    pub fn reselections(&self) -> u64 {
        self.metrics.reselections.get()
    }

    /// The selected replica, selecting one first if there is none.
    pub async fn current(&self) -> Result<u64, FrontendError> {
        match self.selected() {
            Some(id) => Ok(id),
            None => self.select(None).await,
        }
    }

    /// Reports that `failed` did not answer a forwarded request, and selects again unless
    /// another request already moved the selection away from it.
    pub async fn failed(&self, failed: u64) -> Result<u64, FrontendError> {
        self.select(Some(failed)).await
    }

    async fn select(&self, failed: Option<u64>) -> Result<u64, FrontendError> {
        let _one_at_a_time = self.selecting.lock().await;
        let previous = self.selected();
        // Someone selected while we waited for the lock: use that, unless it is the node that
        // just failed us.
        if let Some(id) = rules::keep(previous, failed) {
            return Ok(id);
        }
        self.cannot_serve.lock().end();
        let mut pass = Pass::new(failed);
        let mut verdict = None;
        for (&id, replica) in self.probes.iter().rev() {
            let answer = replica.health().await;
            if let Err(err) = &answer {
                tracing::debug!(id, %err, "order replica did not pass its health check");
            }
            let health = Health::of(&answer);
            let now = Instant::now();
            verdict = pass.answer(id, health, &mut self.settling.lock(), self.patience, now);
            if verdict.is_some() {
                break;
            }
        }
        let verdict = verdict.unwrap_or_else(|| pass.exhausted(&mut self.settling.lock()));
        match verdict {
            Verdict::Select(id) => {
                *self.selected.write() = Some(id);
                self.metrics.selected.set(id as i64);
                if self.selected_once.swap(true, Ordering::Relaxed) {
                    self.metrics.reselections.inc();
                }
                tracing::info!(selected = id, ?previous, "order replica selected");
                self.announce(id).await;
                Ok(id)
            }
            Verdict::WaitFor { higher, ready } => {
                tracing::debug!(higher, ready, "waiting for a higher replica to settle");
                // Not the replica that failed, while we wait.
                *self.selected.write() = None;
                self.metrics.selected.set(0);
                Err(FrontendError::ReplicaSettling(higher))
            }
            Verdict::NoReplica => {
                *self.selected.write() = None;
                self.metrics.selected.set(0);
                Err(FrontendError::NoOrderReplica)
            }
        }
    }

    /// Keeps the selection alive until `shutdown`: selects a replica while none is selected
    /// (none answered, or none could serve yet), and tells every replica the selection again
    /// every `period`, so a replica that restarted (and forgot it) learns it, and leadership
    /// follows it.
    pub async fn maintain(&self, period: Duration, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            match self.selected() {
                Some(id) => self.announce(id).await,
                None => {
                    if let Err(err) = self.select(None).await {
                        tracing::debug!(%err, "no order replica can serve yet");
                    }
                }
            }
            let pause = if self.selected().is_some() {
                period
            } else {
                period / 5
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Tells every replica which one was selected. Best effort: a replica that is down learns
    /// of the next selection instead.
    async fn announce(&self, replica_id: u64) {
        let selection = Selection { replica_id };
        let sends = self.probes.iter().map(|(&id, replica)| {
            let selection = &selection;
            async move {
                if let Err(err) = replica.announce_selection(selection).await {
                    tracing::debug!(id, %err, "could not tell a replica about the selection");
                }
            }
        });
        join_all(sends).await;
    }
}

/// Ping deadline for health checks and notifications.
pub const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);
