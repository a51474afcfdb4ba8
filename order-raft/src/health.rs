//! Whether this replica can serve orders now: what `GET /health` answers, and what the
//! front-end's replica selection (ping from the highest id down) therefore passes over.
//!
//! A replica can serve when its Raft core runs and either
//! - it leads, and a quorum acknowledged it within the leader lease (openraft's
//!   `last_quorum_acked`, see [`millis_since_quorum_ack`]): a leader cut off from the majority stops answering 200 within
//!   one lease, or
//! - it follows a leader it heard from within one election timeout ([`LeaderContact`], touched
//!   by every AppendEntries and InstallSnapshot this replica accepts).
//!
//! Otherwise `/health` is a 503 whose message is the reason: `no leader`, `no quorum` or
//! `raft stopped`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use tokio::time::Instant;

use crate::types::{Raft, TypeConfig};

/// How long ago, in milliseconds, a quorum last acknowledged this leader (`None`: not a
/// leader, or never). openraft 0.10 reports the instant (`last_quorum_acked`) instead of 0.9's
/// age as of the last metrics report (`millis_since_quorum_ack`, deprecated).
pub(crate) fn millis_since_quorum_ack(metrics: &openraft::RaftMetrics<TypeConfig>) -> Option<u64> {
    use openraft::Instant as _;
    metrics
        .last_quorum_acked
        .as_ref()
        .map(|acked| acked.elapsed().as_millis() as u64)
}

/// When this replica last heard from a leader it accepted. Lock-free: touched on every
/// AppendEntries.
pub struct LeaderContact {
    origin: Instant,
    /// Milliseconds since `origin` of the last contact, plus one (0: never).
    last: AtomicU64,
}

impl Default for LeaderContact {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            last: AtomicU64::new(0),
        }
    }
}

impl LeaderContact {
    /// A leader's message was accepted just now. Returns how long it had been silent before,
    /// if it had spoken since this process started (millisecond resolution).
    pub fn touch(&self) -> Option<Duration> {
        let now = self.origin.elapsed().as_millis() as u64 + 1;
        match self.last.fetch_max(now, Ordering::Relaxed) {
            0 => None,
            before => Some(Duration::from_millis(now.saturating_sub(before))),
        }
    }

    /// When the last accepted leader message arrived, if one did since this process started.
    pub fn last(&self) -> Option<Instant> {
        match self.last.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.origin + Duration::from_millis(ms - 1)),
        }
    }

    /// How long ago the last accepted leader message arrived; since start if none did.
    pub fn silence(&self) -> Duration {
        self.last().unwrap_or(self.origin).elapsed()
    }
}

/// Why a replica cannot serve orders now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotServing {
    NoLeader,
    NoQuorum,
    RaftStopped,
}

impl NotServing {
    pub fn reason(self) -> &'static str {
        match self {
            Self::NoLeader => "no leader",
            Self::NoQuorum => "no quorum",
            Self::RaftStopped => "raft stopped",
        }
    }
}

/// Judges, from Raft's metrics and the last leader contact, whether this replica can serve.
pub struct Readiness {
    raft: Raft,
    contact: std::sync::Arc<LeaderContact>,
    /// The leader lease and the followers' patience: the longest election timeout.
    election_timeout: Duration,
    /// Set when the Raft core stopped without being asked to.
    stopped: AtomicBool,
}

impl Readiness {
    pub fn new(
        raft: Raft,
        contact: std::sync::Arc<LeaderContact>,
        election_timeout: Duration,
    ) -> Self {
        Self {
            raft,
            contact,
            election_timeout,
            stopped: AtomicBool::new(false),
        }
    }

    /// Marks the Raft core as stopped for good.
    pub fn mark_stopped(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// `Ok` when this replica can serve orders now, else why not.
    pub fn check(&self) -> Result<(), NotServing> {
        if self.stopped.load(Ordering::Relaxed) {
            return Err(NotServing::RaftStopped);
        }
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        if metrics.running_state.is_err() {
            return Err(NotServing::RaftStopped);
        }
        let lease = self.election_timeout.as_millis() as u64;
        match metrics.state {
            ServerState::Leader => match millis_since_quorum_ack(&metrics) {
                Some(ms) if ms <= lease => Ok(()),
                _ => Err(NotServing::NoQuorum),
            },
            ServerState::Follower | ServerState::Learner
                if metrics.current_leader.is_some()
                    && self.contact.silence() <= self.election_timeout =>
            {
                Ok(())
            }
            ServerState::Shutdown => Err(NotServing::RaftStopped),
            _ => Err(NotServing::NoLeader),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contact_reports_how_long_the_leader_was_silent_before_it() {
        let contact = LeaderContact::default();
        assert_eq!(
            contact.touch(),
            None,
            "the first message follows no earlier one"
        );
        std::thread::sleep(Duration::from_millis(20));
        let silence = contact.touch().expect("a leader spoke before");
        assert!(silence >= Duration::from_millis(20), "{silence:?}");
        assert!(contact.last().is_some());
    }
}
