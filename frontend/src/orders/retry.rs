//! The forwarder's retry rules: how long one order is retried in all, how long each attempt
//! may take, and what each kind of failed attempt leads to. [`super::OrderForwarder`] makes the
//! calls, asks the selector, and sleeps; nothing here does.
//!
//! A request id makes every retry safe, so the forwarder retries anything that may be "not
//! now": no answer (another replica is selected at once), "cannot serve" (the same replica
//! again, until the selector's patience runs out), "busy" (502, 504: again, after a pause).
//! An answer the replica gave on purpose (a 4xx, a 500) is the answer.

use std::time::Duration;

use api::client::CallError;
use axum::http::StatusCode;
use tokio::time::Instant;

/// Pause before retrying a replica that answered "not now".
const BACKOFF: Duration = Duration::from_millis(20);

/// How long one order may be retried in all, counted from its arrival.
#[derive(Debug)]
pub(crate) struct Budget {
    deadline: Instant,
    attempts: u32,
}

/// One attempt the budget allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attempt {
    /// 1 for the first attempt.
    pub(crate) number: u32,
    /// What is left of the budget as the attempt starts.
    pub(crate) remaining: Duration,
}

impl Budget {
    pub(crate) fn new(total: Duration, now: Instant) -> Self {
        Self {
            deadline: now + total,
            attempts: 0,
        }
    }

    /// The next attempt at `now`, or `None` once the budget is spent.
    pub(crate) fn next(&mut self, now: Instant) -> Option<Attempt> {
        let remaining = self.deadline.saturating_duration_since(now);
        if remaining.is_zero() {
            return None;
        }
        self.attempts += 1;
        Some(Attempt {
            number: self.attempts,
            remaining,
        })
    }
}

impl Attempt {
    /// Every attempt after the first is a retry.
    pub(crate) fn is_retry(&self) -> bool {
        self.number > 1
    }

    /// How long this attempt may take: `attempt_timeout`, or what is left of the budget.
    pub(crate) fn timeout(&self, attempt_timeout: Duration) -> Duration {
        self.remaining.min(attempt_timeout)
    }

    /// The pause before the next attempt, within the budget.
    pub(crate) fn backoff(&self) -> Duration {
        BACKOFF.min(self.remaining)
    }
}

/// What the forwarder does after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Select another replica and try it at once.
    Reselect,
    /// Try the same replica again after [`Attempt::backoff`].
    Backoff,
    /// The error is the answer.
    GiveUp,
}

/// The rule for `err`. `out_of_patience` is asked only for a "cannot serve" (503): whether the
/// replica has said so for longer than the selector's patience (asking extends its streak).
pub(crate) fn after(err: &CallError, out_of_patience: impl FnOnce() -> bool) -> Next {
    match err {
        err if err.is_unreachable() => Next::Reselect,
        err if err.status() == Some(StatusCode::SERVICE_UNAVAILABLE) => match out_of_patience() {
            true => Next::Reselect,
            false => Next::Backoff,
        },
        err if err.is_retryable() => Next::Backoff,
        CallError::Api(_) => Next::GiveUp,
        // Not the envelope: a proxy's page, a truncated body. Try again.
        _ => Next::Backoff,
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use api::ApiError;

    use super::*;

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn attempts_run_until_the_budget_is_spent() {
        let t0 = Instant::now();
        let mut budget = Budget::new(ms(1000), t0);
        let first = budget.next(t0).expect("the budget is whole");
        assert_eq!(first.number, 1);
        assert!(!first.is_retry());
        assert_eq!(first.timeout(ms(300)), ms(300));
        assert_eq!(first.backoff(), BACKOFF);

        let second = budget.next(t0 + ms(900)).expect("100 ms left");
        assert!(second.is_retry());
        assert_eq!(second.remaining, ms(100));
        // The last attempt gets only what is left, and so does its pause.
        assert_eq!(second.timeout(ms(300)), ms(100));
        let last = budget.next(t0 + ms(990)).expect("10 ms left");
        assert_eq!(last.number, 3);
        assert_eq!(last.backoff(), ms(10));

        assert_eq!(budget.next(t0 + ms(1000)), None, "spent");
        assert_eq!(budget.next(t0 + ms(5000)), None);
    }

    /// The rule for `err`, and whether it asked the selector's patience.
    fn rule(err: CallError, patience_out: bool) -> (Next, bool) {
        let asked = Cell::new(false);
        let next = after(&err, || {
            asked.set(true);
            patience_out
        });
        (next, asked.get())
    }

    fn status(status: StatusCode) -> CallError {
        CallError::Api(ApiError::new(status, "from the replica"))
    }

    #[test]
    fn no_answer_selects_another_replica_at_once() {
        let refused = CallError::Unreachable("connection refused".into());
        assert_eq!(rule(refused, false), (Next::Reselect, false));
        let slow = CallError::Timeout("no answer".into());
        assert_eq!(rule(slow, false), (Next::Reselect, false));
    }

    #[test]
    fn cannot_serve_retries_the_same_replica_until_the_patience_runs_out() {
        let unavailable = || status(StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(rule(unavailable(), false), (Next::Backoff, true));
        assert_eq!(rule(unavailable(), true), (Next::Reselect, true));
    }

    #[test]
    fn busy_answers_are_retried_and_deliberate_answers_are_final() {
        for busy in [StatusCode::BAD_GATEWAY, StatusCode::GATEWAY_TIMEOUT] {
            assert_eq!(rule(status(busy), true), (Next::Backoff, false), "{busy}");
        }
        for answer in [
            StatusCode::BAD_REQUEST,
            StatusCode::NOT_FOUND,
            StatusCode::CONFLICT,
            StatusCode::INTERNAL_SERVER_ERROR,
        ] {
            assert_eq!(
                rule(status(answer), true),
                (Next::GiveUp, false),
                "{answer}"
            );
        }
        let garbled = CallError::Protocol("not JSON".into());
        assert_eq!(rule(garbled, true), (Next::Backoff, false));
    }
}
