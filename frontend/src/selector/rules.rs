//! The selection rules, as state fed with what the replicas answered and when:
//! [`super::ReplicaSelector`] pings the replicas, feeds each answer to a [`Pass`], and keeps
//! the [`Streak`]s between passes and requests. Nothing here calls a replica or reads the clock.
//!
//! - The highest id that answers "can serve" is selected.
//! - A higher replica that answers "not yet" (a 503) while a lower one can serve is waited for,
//!   for as long as the patience (one election timeout): after an election the replicas hear
//!   the new leader milliseconds apart. A replica that does not answer at all, or the one that
//!   just failed a request, is not waited for.
//! - A selected replica that keeps answering "cannot serve" with no answer in between counts as
//!   failed once that has lasted longer than the patience.

use std::time::Duration;

use api::client::CallError;
use axum::http::StatusCode;
use tokio::time::Instant;

/// One replica's streak of doing something (answering "cannot serve", or "not yet"): which
/// replica, and since when. Another replica doing it starts a new streak.
#[derive(Debug, Default)]
pub(crate) struct Streak(Option<(u64, Instant)>);

impl Streak {
    /// `id` did it again at `now`. True when its streak has lasted longer than `limit`; starts
    /// a streak (and answers false) if `id` had none.
    pub(crate) fn outlasts(&mut self, id: u64, limit: Duration, now: Instant) -> bool {
        match self.0 {
            Some((replica, from)) if replica == id => now.duration_since(from) > limit,
            _ => {
                self.0 = Some((id, now));
                false
            }
        }
    }

    /// Ends `id`'s streak, if it has the current one.
    pub(crate) fn end_for(&mut self, id: u64) {
        if self.0.is_some_and(|(replica, _)| replica == id) {
            self.0 = None;
        }
    }

    pub(crate) fn end(&mut self) {
        self.0 = None;
    }
}

/// What a replica's health check said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    /// It can serve orders now.
    Ready,
    /// It answered that it cannot serve yet (a 503: no leader, no quorum).
    NotYet,
    /// No answer, or another error.
    Down,
}

impl Health {
    pub(crate) fn of<T>(answer: &Result<T, CallError>) -> Self {
        match answer {
            Ok(_) => Self::Ready,
            Err(err) if err.status() == Some(StatusCode::SERVICE_UNAVAILABLE) => Self::NotYet,
            Err(_) => Self::Down,
        }
    }
}

/// How a selection pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Select(u64),
    /// A lower replica (`ready`) can serve, but the `higher` one is still settling: select
    /// nothing yet.
    WaitFor {
        higher: u64,
        ready: u64,
    },
    /// No replica can serve.
    NoReplica,
}

/// A selection already made by another request is kept, unless it is the replica that just
/// `failed`.
pub(crate) fn keep(previous: Option<u64>, failed: Option<u64>) -> Option<u64> {
    previous.filter(|_| previous != failed)
}

/// One selection pass over the replicas, highest id first.
#[derive(Debug)]
pub(crate) struct Pass {
    /// The replica that just failed a request, if this pass replaces it.
    failed: Option<u64>,
    /// The highest replica that answered "not yet" in this pass.
    settling: Option<u64>,
}

impl Pass {
    pub(crate) fn new(failed: Option<u64>) -> Self {
        Self {
            failed,
            settling: None,
        }
    }

    /// Replica `id` (lower than every one answered before) answered `health` at `now`;
    /// `waited` is how long the selection has waited for a settling replica, across passes.
    /// `Some` ends the pass.
    pub(crate) fn answer(
        &mut self,
        id: u64,
        health: Health,
        waited: &mut Streak,
        patience: Duration,
        now: Instant,
    ) -> Option<Verdict> {
        match health {
            Health::Ready => {
                if let Some(higher) = self.settling
                    && !waited.outlasts(higher, patience, now)
                {
                    return Some(Verdict::WaitFor { higher, ready: id });
                }
                waited.end();
                Some(Verdict::Select(id))
            }
            Health::NotYet => {
                if self.settling.is_none() && Some(id) != self.failed {
                    self.settling = Some(id);
                }
                None
            }
            Health::Down => None,
        }
    }

    /// Every replica answered and none was selected.
    pub(crate) fn exhausted(self, waited: &mut Streak) -> Verdict {
        waited.end();
        Verdict::NoReplica
    }
}

#[cfg(test)]
mod tests {
    use api::envelope::ApiError;

    use super::*;

    const PATIENCE: Duration = Duration::from_millis(1200);

    /// One pass: `answers` from the highest id down, all at `now`.
    fn pass(
        failed: Option<u64>,
        answers: &[(u64, Health)],
        waited: &mut Streak,
        now: Instant,
    ) -> Verdict {
        let mut pass = Pass::new(failed);
        for &(id, health) in answers {
            if let Some(verdict) = pass.answer(id, health, waited, PATIENCE, now) {
                return verdict;
            }
        }
        pass.exhausted(waited)
    }

    use Health::{Down, NotYet, Ready};

    #[test]
    fn the_highest_ready_replica_is_selected() {
        let now = Instant::now();
        let mut waited = Streak::default();
        let all = [(3, Ready), (2, Ready), (1, Ready)];
        assert_eq!(pass(None, &all, &mut waited, now), Verdict::Select(3));
        let down = [(3, Down), (2, Ready)];
        assert_eq!(pass(None, &down, &mut waited, now), Verdict::Select(2));
        let none = [(3, Down), (2, NotYet), (1, Down)];
        assert_eq!(pass(None, &none, &mut waited, now), Verdict::NoReplica);
    }

    #[test]
    fn a_settling_higher_replica_is_waited_for_one_patience() {
        let t0 = Instant::now();
        let mut waited = Streak::default();
        let settling = [(3, NotYet), (2, Ready)];
        assert_eq!(
            pass(None, &settling, &mut waited, t0),
            Verdict::WaitFor {
                higher: 3,
                ready: 2
            }
        );
        let at_limit = t0 + PATIENCE;
        assert_eq!(
            pass(None, &settling, &mut waited, at_limit),
            Verdict::WaitFor {
                higher: 3,
                ready: 2
            }
        );
        // Ready in time: selected, and the wait is over.
        let ready = [(3, Ready), (2, Ready)];
        assert_eq!(
            pass(None, &ready, &mut waited, at_limit),
            Verdict::Select(3)
        );
        // A new wait starts from scratch.
        let t1 = at_limit + Duration::from_millis(1);
        assert_eq!(
            pass(None, &settling, &mut waited, t1),
            Verdict::WaitFor {
                higher: 3,
                ready: 2
            }
        );
        // Longer than the patience: the lower replica is selected.
        let late = t1 + PATIENCE + Duration::from_millis(1);
        assert_eq!(pass(None, &settling, &mut waited, late), Verdict::Select(2));
    }

    #[test]
    fn only_a_higher_replica_answering_not_yet_is_waited_for() {
        let now = Instant::now();
        let mut waited = Streak::default();
        // The replica that just failed a request is not waited for.
        let failed = [(3, NotYet), (2, Ready)];
        assert_eq!(pass(Some(3), &failed, &mut waited, now), Verdict::Select(2));
        // Nor is one that does not answer.
        let down = [(3, Down), (2, Ready)];
        assert_eq!(pass(None, &down, &mut waited, now), Verdict::Select(2));
        // The highest settling replica is the one waited for.
        let two = [(3, NotYet), (2, NotYet), (1, Ready)];
        assert_eq!(
            pass(None, &two, &mut waited, now),
            Verdict::WaitFor {
                higher: 3,
                ready: 1
            }
        );
    }

    #[test]
    fn a_reply_of_503_is_not_yet_and_anything_else_is_down() {
        let ok: Result<(), CallError> = Ok(());
        assert_eq!(Health::of(&ok), Ready);
        let unavailable: Result<(), _> = Err(CallError::Api(ApiError::unavailable("no leader")));
        assert_eq!(Health::of(&unavailable), NotYet);
        let internal: Result<(), _> = Err(CallError::Api(ApiError::internal("broken")));
        assert_eq!(Health::of(&internal), Down);
        let timeout: Result<(), _> = Err(CallError::Timeout("slow".into()));
        assert_eq!(Health::of(&timeout), Down);
    }

    #[test]
    fn a_replica_fails_after_cannot_serve_for_longer_than_the_patience() {
        let t0 = Instant::now();
        let mut cannot_serve = Streak::default();
        assert!(!cannot_serve.outlasts(3, PATIENCE, t0));
        assert!(!cannot_serve.outlasts(3, PATIENCE, t0 + PATIENCE));
        assert!(cannot_serve.outlasts(3, PATIENCE, t0 + PATIENCE + Duration::from_millis(1)));
        // An answer in between ends the streak; another replica's answer does not.
        let t1 = t0 + 2 * PATIENCE;
        cannot_serve.end_for(2);
        assert!(cannot_serve.outlasts(3, PATIENCE, t1));
        cannot_serve.end_for(3);
        assert!(!cannot_serve.outlasts(3, PATIENCE, t1));
        // Another replica starts a streak of its own.
        let t2 = t1 + 2 * PATIENCE;
        assert!(!cannot_serve.outlasts(2, PATIENCE, t2));
        assert!(!cannot_serve.outlasts(3, PATIENCE, t2 + PATIENCE));
    }

    #[test]
    fn another_request_s_selection_is_kept_unless_it_just_failed() {
        assert_eq!(keep(Some(3), None), Some(3));
        assert_eq!(keep(Some(3), Some(2)), Some(3));
        assert_eq!(keep(Some(3), Some(3)), None);
        assert_eq!(keep(None, Some(3)), None);
    }
}
