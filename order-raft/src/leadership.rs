//! Leadership follows the front-end's selection, so that in steady state the replica the
//! front-end talks to is the Raft leader and orders take no forwarding hop.
//!
//! openraft's followers reject every vote request while their leader lease
//! (`election_timeout_max` after the last message from the leader) runs. This module predates
//! openraft 0.10's leadership transfer (`Trigger::transfer_leader`), which it does not use (yet):
//! leadership moves in two cooperating steps, both driven by the selection every replica is told
//! of (`POST /selection`):
//!
//! - **The leader hands over** when the selection names another replica: it stops taking new
//!   writes and reads (the [`LeaderGate`]), waits until the selected replica's log has caught up
//!   with its own, and pauses its heartbeats. With nothing sent, every follower's lease runs
//!   out one lease later.
//! - **The selected replica campaigns** as soon as it has heard nothing from a leader for one
//!   lease plus a small margin: at that moment the other followers' leases have just expired
//!   (they heard the last heartbeat when it did), while their own election timers, which wait
//!   one lease plus a random election timeout, have not fired yet. So its first election
//!   succeeds. The same rule makes failover fast when the leader dies: the front-end selects
//!   another replica, and that replica campaigns one lease after the leader's last heartbeat,
//!   instead of waiting out a lease plus a random timeout and often losing a split vote.
//!
//! A handover that does not complete (the selected replica is down, or its log is too far
//! behind) is abandoned after a bound: heartbeats resume and the leader keeps leading, trying
//! again after a pause while the selection stays the same. Leadership only ever moves towards the
//! current selection, so it cannot ping-pong while the front-end's choice is stable.
//!
//! The decisions are in [`rules`] ([`rules::Follow`], [`rules::Handover`]); this module polls
//! Raft and the peers for them and acts on their answers.

pub mod rules;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use api::order::ReplicaClient;
use futures::future::join_all;

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use tokio::sync::{RwLock, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::health::LeaderContact;
use crate::types::{NodeId, Raft};
use rules::{Duty, Follow, Handover, Next, Progress, Tick};

/// Held (shared) by every client write and linearizable read on the leader; taken (exclusive)
/// by a handover, which must keep the leader silent.
pub type LeaderGate = Arc<RwLock<()>>;

/// How often the task looks at the selection and Raft's state.
const TICK: Duration = Duration::from_millis(5);

/// Pause before handing over again to the same replica after a failed attempt.
const RETRY_HANDOVER_AFTER: Duration = Duration::from_secs(2);

/// A selected replica that has campaigned (or decided not to) waits this long before it may
/// campaign again without having heard from a leader: meanwhile openraft's own election
/// timers, which fire one lease plus an election timeout after the last leader message, elect
/// whoever can win.
const RECAMPAIGN_AFTER: Duration = Duration::from_secs(1);

/// How long a replica about to campaign waits for each peer to say how long its log is.
const PEER_LOG_TIMEOUT: Duration = Duration::from_millis(50);

/// The timings leadership moves with.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// openraft's leader lease: `election_timeout_max`.
    pub lease: Duration,
    /// The shortest election timeout: followers' own timers never fire before lease + this.
    pub election_min: Duration,
    /// How long after a lease the selected replica campaigns: covers the skew between the
    /// followers' clocks of the leader's last message, and stays well below `election_min`.
    pub margin: Duration,
}

impl Timings {
    /// The selected replica campaigns after this much silence from any leader.
    pub fn campaign_after(&self) -> Duration {
        self.lease + self.margin
    }

    /// A handing-over leader gives up after this much silence of its own: late enough for the
    /// selected replica to have campaigned, early enough that no other follower's own
    /// election timer has fired.
    pub fn handover_limit(&self) -> Duration {
        self.lease + self.margin + self.election_min.saturating_sub(self.margin) / 2
    }
}

pub struct Leadership {
    id: NodeId,
    raft: Raft,
    selected: watch::Receiver<NodeId>,
    contact: Arc<LeaderContact>,
    gate: LeaderGate,
    timings: Timings,
    /// The other replicas: a selected replica asks them how long their logs are before it
    /// campaigns.
    peers: BTreeMap<NodeId, ReplicaClient>,
}

impl Leadership {
    /// Leadership of replica `id`, following the selection `selected` (from
    /// [`crate::node::OrderNode::new`]); `gate` is the one every client write and read holds.
    pub fn new(
        id: NodeId,
        raft: Raft,
        selected: watch::Receiver<NodeId>,
        contact: Arc<LeaderContact>,
        gate: LeaderGate,
        timings: Timings,
        peers: BTreeMap<NodeId, ReplicaClient>,
    ) -> Self {
        Self {
            id,
            raft,
            selected,
            contact,
            gate,
            timings,
            peers,
        }
    }

    /// Runs until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut follow = Follow::new(self.id, self.timings);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.selected.changed() => {}
                _ = tokio::time::sleep(TICK) => {}
            }
            let seen = self.look();
            match follow.tick(&seen, Instant::now()) {
                Duty::Idle => {}
                Duty::Campaign => self.campaign().await,
                Duty::HandOver(to) => {
                    let outcome = self.hand_over(to).await;
                    if let Err(why) = outcome {
                        tracing::warn!(to, why, "handover abandoned; still leading");
                    }
                    follow.handed_over(to, outcome.is_ok(), Instant::now());
                }
            }
        }
    }

    /// The selection, Raft's state and the last leader contact, now.
    fn look(&mut self) -> Tick {
        let selected = *self.selected.borrow_and_update();
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        let selected_is_voter = metrics
            .membership_config
            .membership()
            .voter_ids()
            .any(|id| id == selected);
        Tick {
            selected,
            leading: metrics.state == ServerState::Leader,
            selected_is_voter,
            heard: self.contact.last(),
            silence: self.contact.silence(),
        }
    }

    /// Campaigns (the silence is long enough: see [`Follow`]), but only with a log as long as
    /// every peer that answers: Raft elects only a candidate whose log is at least as up to
    /// date as a majority's, so a campaign from behind is lost, and its higher term only delays
    /// the replica that could win. That one is left to win by its own timer, and hands
    /// leadership over once this log has caught up.
    async fn campaign(&self) {
        if let Some(ahead) = self.peer_ahead().await {
            tracing::info!(
                peer = ahead,
                "selected by the front-end, but a peer's log is longer: leaving the election to it"
            );
            return;
        }
        tracing::info!(
            silence_ms = self.contact.silence().as_millis() as u64,
            "selected by the front-end and no leader heard from: campaigning"
        );
        if let Err(err) = self.raft.trigger().elect(false).await {
            tracing::warn!(%err, "cannot start an election");
        }
    }

    /// A peer whose log is longer than this replica's, among those that answer within
    /// [`PEER_LOG_TIMEOUT`] (a dead or cut-off peer does not vote either).
    async fn peer_ahead(&self) -> Option<NodeId> {
        let own = self.raft.metrics().borrow_watched().last_log_index;
        let asks = self.peers.iter().map(|(&id, peer)| async move {
            let status = tokio::time::timeout(PEER_LOG_TIMEOUT, peer.status()).await;
            let theirs = status.ok()?.ok()?.last_log_index;
            rules::ahead(own, theirs).then_some(id)
        });
        join_all(asks).await.into_iter().flatten().next()
    }

    /// Lets `to` take over: quiet the leader, wait for `to` to catch up, pause heartbeats, and
    /// wait until `to` has won ([`Handover`] decides each step). `Err` says why it did not
    /// happen.
    async fn hand_over(&self, to: NodeId) -> Result<(), &'static str> {
        // No write or read of ours may reach a follower from now on: each would renew its lease.
        let _quiet = self.gate.write().await;
        let mut handover = Handover::start(self.timings, Instant::now());
        let outcome = loop {
            let seen = {
                let metrics = self.raft.metrics();
                let metrics = metrics.borrow_watched();
                Progress {
                    leading: metrics.state == ServerState::Leader,
                    matched: metrics
                        .replication
                        .as_ref()
                        .and_then(|progress| progress.get(&to).cloned().flatten())
                        .map(|log_id| log_id.index),
                    last_log_index: metrics.last_log_index,
                }
            };
            match handover.step(seen, Instant::now()) {
                Next::Wait(pause) => tokio::time::sleep(pause).await,
                Next::PauseHeartbeats => {
                    tracing::info!(to, "handing leadership over to the selected replica");
                    self.raft.runtime_config().heartbeat(false);
                }
                Next::Done(outcome) => break outcome,
            }
        };
        if handover.silenced() {
            self.raft.runtime_config().heartbeat(true);
            if outcome.is_ok() {
                tracing::info!(to, "stepped down for the selected replica");
            }
        }
        outcome
    }
}
