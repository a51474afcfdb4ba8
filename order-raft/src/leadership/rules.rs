//! The rules leadership moves by, as decisions over what a replica observes: the front-end's
//! selection, its own Raft state, how long since a leader spoke, how far the selected replica's
//! log is. [`super::Leadership`] polls Raft every tick, feeds them, and does what they say
//! (campaign, pause heartbeats, give up); nothing here calls Raft, a peer or the clock.

use std::time::Duration;

use tokio::time::Instant;

use super::{RECAMPAIGN_AFTER, RETRY_HANDOVER_AFTER, TICK, Timings};
use crate::types::NodeId;

/// Longest wait for the selected replica's log to catch up before a handover.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(1);

/// How often a silent leader looks whether it has been deposed yet.
const STEP_DOWN_POLL: Duration = Duration::from_millis(1);

/// What a replica sees on one tick.
#[derive(Debug, Clone, Copy)]
pub struct Tick {
    /// The replica the front-end selected (0: none yet).
    pub selected: NodeId,
    /// Whether this replica is the Raft leader.
    pub leading: bool,
    /// Whether the selected replica is a voter of the current membership.
    pub selected_is_voter: bool,
    /// When this replica last heard from a leader, if it ever did.
    pub heard: Option<Instant>,
    /// How long it has heard nothing from a leader (since it started, if it never did).
    pub silence: Duration,
}

/// What the leadership task does on a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duty {
    Idle,
    /// Campaign, unless a peer's log is longer (see [`ahead`]).
    Campaign,
    /// Hand leadership over to the selected replica.
    HandOver(NodeId),
}

/// Leadership follows the selection: the selected replica campaigns after a silence, a leader
/// that is not selected hands over. The state is what the task remembers between ticks.
#[derive(Debug)]
pub struct Follow {
    id: NodeId,
    timings: Timings,
    /// When this replica last campaigned (or decided not to).
    last_campaign: Option<Instant>,
    /// The last handover that did not complete: to whom, and when it was given up.
    failed_handover: Option<(NodeId, Instant)>,
}

impl Follow {
    pub fn new(id: NodeId, timings: Timings) -> Self {
        Self {
            id,
            timings,
            last_campaign: None,
            failed_handover: None,
        }
    }

    /// The duty for what was seen at `now`.
    pub fn tick(&mut self, seen: &Tick, now: Instant) -> Duty {
        if seen.selected == 0 {
            Duty::Idle
        } else if seen.selected == self.id {
            if seen.leading || !self.may_campaign(seen, now) {
                return Duty::Idle;
            }
            self.last_campaign = Some(now);
            Duty::Campaign
        } else if seen.leading && seen.selected_is_voter {
            // After a failed handover to the same replica, pause before trying again.
            let retry_now = self.failed_handover.is_none_or(|(to, at)| {
                to != seen.selected || now.duration_since(at) >= RETRY_HANDOVER_AFTER
            });
            match retry_now {
                true => Duty::HandOver(seen.selected),
                false => Duty::Idle,
            }
        } else {
            Duty::Idle
        }
    }

    /// Campaigns only after a lease and a margin of silence from any leader: then the other
    /// followers' leases have just run out, and their own timers have not fired yet. At most
    /// once per such silence: if the campaign is lost, openraft's timers take over for
    /// [`RECAMPAIGN_AFTER`] (a leader heard since then starts a new silence).
    fn may_campaign(&self, seen: &Tick, now: Instant) -> bool {
        if seen.silence < self.timings.campaign_after() {
            return false;
        }
        match self.last_campaign {
            Some(at) => {
                seen.heard.is_some_and(|heard| heard >= at)
                    || now.duration_since(at) >= RECAMPAIGN_AFTER
            }
            None => true,
        }
    }

    /// The handover to `to` ended at `now`: `completed`, or given up.
    pub fn handed_over(&mut self, to: NodeId, completed: bool, now: Instant) {
        self.failed_handover = (!completed).then_some((to, now));
    }
}

/// Whether a peer whose log ends at `theirs` is ahead of this replica's, which ends at `own`:
/// Raft elects only a candidate whose log is at least as up to date as a majority's, so this
/// replica leaves the election to such a peer.
pub fn ahead(own: Option<u64>, theirs: Option<u64>) -> bool {
    theirs > own
}

/// What a handing-over leader sees: whether it still leads, and how far the selected replica's
/// log matches its own.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub leading: bool,
    /// The last index the selected replica's log is known to match, if any.
    pub matched: Option<u64>,
    pub last_log_index: Option<u64>,
}

/// What a handing-over leader does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Look again after this long.
    Wait(Duration),
    /// The selected replica has caught up: stop sending heartbeats now.
    PauseHeartbeats,
    /// Over: handed over (`Ok`), or why not.
    Done(Result<(), &'static str>),
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// The leader is quiet (no new writes or reads), waiting for the selected replica's log.
    CatchingUp { until: Instant },
    /// Heartbeats are paused, waiting for the selected replica to win an election.
    Silent { until: Instant },
}

/// One handover, as a leader goes through it: catch-up, then silence until deposed.
#[derive(Debug)]
pub struct Handover {
    timings: Timings,
    phase: Phase,
}

impl Handover {
    /// A handover starting at `now`; the caller already holds the leader gate.
    pub fn start(timings: Timings, now: Instant) -> Self {
        Self {
            timings,
            phase: Phase::CatchingUp {
                until: now + CATCH_UP_LIMIT,
            },
        }
    }

    /// Whether heartbeats were paused (they must be resumed once it is over).
    pub fn silenced(&self) -> bool {
        matches!(self.phase, Phase::Silent { .. })
    }

    /// The next step for what the leader sees at `now`. Heartbeats pause only once the
    /// selected replica's log has caught up (a replica that is behind cannot win); the silence
    /// lasts at most [`Timings::handover_limit`], after which the leader keeps leading.
    pub fn step(&mut self, seen: Progress, now: Instant) -> Next {
        if !seen.leading {
            return Next::Done(Ok(()));
        }
        match self.phase {
            Phase::CatchingUp { until } => {
                if seen.matched.is_some() && seen.matched >= seen.last_log_index {
                    self.phase = Phase::Silent {
                        until: now + self.timings.handover_limit(),
                    };
                    Next::PauseHeartbeats
                } else if now >= until {
                    Next::Done(Err("the selected replica's log did not catch up"))
                } else {
                    Next::Wait(TICK)
                }
            }
            Phase::Silent { until } if now >= until => {
                Next::Done(Err("the selected replica did not take over in time"))
            }
            Phase::Silent { .. } => Next::Wait(STEP_DOWN_POLL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: NodeId = 2;

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    /// The defaults of `--election-max-ms`, `--election-min-ms`, `--campaign-margin-ms`.
    fn timings() -> Timings {
        Timings {
            lease: ms(150),
            election_min: ms(120),
            margin: ms(10),
        }
    }

    fn follower(selected: NodeId, silence: Duration) -> Tick {
        Tick {
            selected,
            leading: false,
            selected_is_voter: true,
            heard: None,
            silence,
        }
    }

    fn leader(selected: NodeId) -> Tick {
        Tick {
            leading: true,
            ..follower(selected, Duration::ZERO)
        }
    }

    #[test]
    fn the_campaign_waits_a_lease_and_a_margin_which_stay_below_the_followers_timers() {
        for timings in [
            timings(),
            Timings {
                lease: ms(1000),
                election_min: ms(800),
                margin: ms(50),
            },
        ] {
            let campaign = timings.campaign_after();
            assert_eq!(campaign, timings.lease + timings.margin);
            // A silent leader gives up after the selected replica campaigned, and before any
            // other follower's own timer (lease + a random timeout ≥ election_min) fires.
            assert!(campaign < timings.handover_limit());
            assert!(timings.handover_limit() < timings.lease + timings.election_min);
        }
    }

    #[test]
    fn the_selected_replica_campaigns_after_the_margin_once_per_silence() {
        let t0 = Instant::now();
        let mut follow = Follow::new(ME, timings());
        let campaign_after = timings().campaign_after();
        let before = follower(ME, campaign_after - ms(1));
        assert_eq!(follow.tick(&before, t0), Duty::Idle, "inside the lease");
        let silent = follower(ME, campaign_after);
        assert_eq!(follow.tick(&silent, t0), Duty::Campaign);
        // Lost: no second campaign in the same silence before RECAMPAIGN_AFTER.
        let later = follower(ME, campaign_after + ms(500));
        assert_eq!(follow.tick(&later, t0 + ms(500)), Duty::Idle);
        assert_eq!(follow.tick(&later, t0 + RECAMPAIGN_AFTER), Duty::Campaign);
        // A leader heard since the last campaign starts a new silence.
        let t1 = t0 + RECAMPAIGN_AFTER + ms(10);
        let heard = Tick {
            heard: Some(t1),
            ..follower(ME, campaign_after)
        };
        assert_eq!(follow.tick(&heard, t1), Duty::Campaign);
    }

    #[test]
    fn leadership_moves_only_towards_the_selection() {
        let now = Instant::now();
        let mut follow = Follow::new(ME, timings());
        let long_silence = ms(10_000);
        assert_eq!(follow.tick(&follower(0, long_silence), now), Duty::Idle);
        assert_eq!(follow.tick(&leader(0), now), Duty::Idle, "no selection yet");
        assert_eq!(follow.tick(&leader(ME), now), Duty::Idle, "already leads");
        assert_eq!(follow.tick(&leader(3), now), Duty::HandOver(3));
        let learner = Tick {
            selected_is_voter: false,
            ..leader(3)
        };
        assert_eq!(follow.tick(&learner, now), Duty::Idle, "not a voter");
        // Another replica is selected: a follower leaves it to that one and its leader.
        assert_eq!(follow.tick(&follower(3, long_silence), now), Duty::Idle);
    }

    #[test]
    fn a_failed_handover_is_retried_after_a_pause_unless_the_selection_moved() {
        let t0 = Instant::now();
        let mut follow = Follow::new(ME, timings());
        assert_eq!(follow.tick(&leader(3), t0), Duty::HandOver(3));
        follow.handed_over(3, false, t0);
        let soon = t0 + RETRY_HANDOVER_AFTER - ms(1);
        assert_eq!(follow.tick(&leader(3), soon), Duty::Idle);
        assert_eq!(follow.tick(&leader(1), soon), Duty::HandOver(1));
        let later = t0 + RETRY_HANDOVER_AFTER;
        assert_eq!(follow.tick(&leader(3), later), Duty::HandOver(3));
        follow.handed_over(3, true, later);
        assert_eq!(follow.tick(&leader(3), later), Duty::HandOver(3));
    }

    #[test]
    fn a_peer_with_a_longer_log_is_ahead() {
        assert!(ahead(Some(4), Some(5)));
        assert!(!ahead(Some(5), Some(5)));
        assert!(!ahead(Some(5), None));
        assert!(ahead(None, Some(0)));
    }

    fn progress(matched: Option<u64>, last: u64) -> Progress {
        Progress {
            leading: true,
            matched,
            last_log_index: Some(last),
        }
    }

    #[test]
    fn heartbeats_pause_only_once_the_selected_log_caught_up() {
        let t0 = Instant::now();
        let mut handover = Handover::start(timings(), t0);
        assert_eq!(handover.step(progress(None, 9), t0), Next::Wait(TICK));
        assert_eq!(handover.step(progress(Some(8), 9), t0), Next::Wait(TICK));
        assert!(!handover.silenced());
        assert_eq!(
            handover.step(progress(Some(9), 9), t0 + ms(5)),
            Next::PauseHeartbeats
        );
        assert!(handover.silenced());
        // Silent until deposed, within the limit counted from the pause.
        let limit = timings().handover_limit();
        let waiting = handover.step(progress(Some(9), 9), t0 + ms(5) + limit - ms(1));
        assert_eq!(waiting, Next::Wait(STEP_DOWN_POLL));
        let deposed = Progress {
            leading: false,
            ..progress(Some(9), 9)
        };
        assert_eq!(handover.step(deposed, t0 + ms(50)), Next::Done(Ok(())));
    }

    #[test]
    fn a_handover_gives_up_when_the_log_lags_or_nobody_takes_over() {
        let t0 = Instant::now();
        let mut lagging = Handover::start(timings(), t0);
        assert_eq!(
            lagging.step(progress(Some(3), 9), t0 + CATCH_UP_LIMIT),
            Next::Done(Err("the selected replica's log did not catch up"))
        );
        assert!(!lagging.silenced(), "heartbeats were never paused");

        let mut ignored = Handover::start(timings(), t0);
        assert_eq!(
            ignored.step(progress(Some(9), 9), t0),
            Next::PauseHeartbeats
        );
        assert_eq!(
            ignored.step(progress(Some(9), 9), t0 + timings().handover_limit()),
            Next::Done(Err("the selected replica did not take over in time"))
        );
        assert!(ignored.silenced(), "heartbeats must be resumed");
    }
}
