//! Where a replica sends an order or an order query, as rules over what it sees of Raft: who
//! leads in which term, and which leadership already failed the request. [`super::OrderNode`]
//! feeds them Raft's metrics, serves or forwards as they say, and reports failures back.
//!
//! - A replica serves a request itself only while it is the leader; it forwards to the leader
//!   it knows of otherwise, but only a request nobody forwarded yet (no forwarding loops).
//! - A leadership that failed a request (it died, stepped down, lost its quorum) is avoided
//!   for that request, but only in the term it failed in: the same replica elected again in a
//!   later term serves the retry (it may well be the only candidate with the whole log).
//! - During an election, a request waits for a leader, within its deadline, rather than being
//!   answered with a 503 its sender must come back on.

use tokio::sync::watch;
use tokio::time::Instant;

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use openraft::type_config::alias::WatchReceiverOf;

use crate::types::{NodeId, TypeConfig};

/// Raft's metrics, which a [`View`] is read from.
pub(crate) type Metrics = openraft::RaftMetrics<TypeConfig>;

/// A watch [`wait_for_leader`] reads: Raft's metrics (openraft 0.10 hands out its own watch
/// type for them), or in tests a tokio watch of views.
pub(crate) trait Watched<T> {
    /// `see` applied to the latest value, without marking it seen.
    fn see<R>(&self, see: impl FnOnce(&T) -> R) -> R;
    /// Resolves when a value not yet marked seen arrives; `Err` once the sender is gone.
    async fn changed(&mut self) -> Result<(), ()>;
}

impl<T> Watched<T> for watch::Receiver<T> {
    fn see<R>(&self, see: impl FnOnce(&T) -> R) -> R {
        see(&self.borrow())
    }

    async fn changed(&mut self) -> Result<(), ()> {
        watch::Receiver::changed(self).await.map_err(|_| ())
    }
}

/// Raft's metrics as a [`Watched`].
pub(crate) struct MetricsWatch(pub(crate) WatchReceiverOf<TypeConfig, Metrics>);

impl Watched<Metrics> for MetricsWatch {
    fn see<R>(&self, see: impl FnOnce(&Metrics) -> R) -> R {
        see(&self.0.borrow_watched())
    }

    async fn changed(&mut self) -> Result<(), ()> {
        self.0.changed().await.map_err(|_| ())
    }
}

/// Where a request must be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Here,
    Leader(NodeId),
    Nowhere,
}

/// A leader that failed to serve a request, in the term it failed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failed {
    pub(crate) leader: NodeId,
    pub(crate) term: u64,
}

/// What replica `id` sees of leadership at one moment: the route, and the term it is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct View {
    pub(crate) id: NodeId,
    pub(crate) route: Route,
    pub(crate) term: u64,
}

impl View {
    /// From Raft's metrics: the leader it knows of, its own state and its term. A replica
    /// that still names itself leader but no longer is in the leader state routes nowhere.
    pub(crate) fn new(id: NodeId, leader: Option<NodeId>, state: ServerState, term: u64) -> Self {
        let route = match leader {
            Some(leader) if leader == id && state == ServerState::Leader => Route::Here,
            Some(leader) if leader != id => Route::Leader(leader),
            _ => Route::Nowhere,
        };
        Self { id, route, term }
    }

    /// From Raft's latest metrics.
    pub(crate) fn of(id: NodeId, metrics: &Metrics) -> Self {
        Self::new(
            id,
            metrics.current_leader,
            metrics.state,
            metrics.current_term,
        )
    }

    /// The replica that leads in this view, if one is known.
    fn leader(&self) -> Option<NodeId> {
        match self.route {
            Route::Here => Some(self.id),
            Route::Leader(leader) => Some(leader),
            Route::Nowhere => None,
        }
    }

    /// Whether a request that `failed` may take this route: a leader is known, and it is not
    /// the leadership that failed the request (the same replica in a later term is another).
    pub(crate) fn serves_after(&self, failed: Option<Failed>) -> bool {
        self.leader().is_some_and(|leader| {
            failed
                != Some(Failed {
                    leader,
                    term: self.term,
                })
        })
    }

    /// The leadership to avoid once this view's leader failed the request.
    pub(crate) fn failure(&self) -> Option<Failed> {
        self.leader().map(|leader| Failed {
            leader,
            term: self.term,
        })
    }
}

/// What a replica does with a request on `route`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    ServeHere,
    Forward(NodeId),
    /// No leader known, or one that a forwarded request may not be forwarded to again.
    NoLeader,
}

/// The step for a request on `route`; `may_move` is false for a request another replica
/// forwarded here (it is served here or not at all, so there are no loops).
pub(crate) fn step(route: Route, may_move: bool) -> Step {
    match route {
        Route::Here => Step::ServeHere,
        Route::Leader(leader) if may_move => Step::Forward(leader),
        _ => Step::NoLeader,
    }
}

/// Whether a request that failed at a leader is tried again at another leadership: only when
/// the failure means "not now" (`retryable`), the request may move, and its deadline has not
/// passed (otherwise the failure is the answer).
pub(crate) fn retry_elsewhere(
    retryable: bool,
    may_move: bool,
    now: Instant,
    deadline: Instant,
) -> bool {
    retryable && may_move && now < deadline
}

/// Waits, until `deadline`, for a view (`see` reads it from `watch`'s latest value) that
/// [`View::serves_after`] `failed`. At the deadline, the answer's route is [`Route::Nowhere`].
pub(crate) async fn wait_for_leader<T>(
    watch: &mut impl Watched<T>,
    see: impl Fn(&T) -> View,
    failed: Option<Failed>,
    deadline: Instant,
) -> View {
    loop {
        // `borrow`, not `borrow_and_update`: a change since the receiver was made is one not
        // judged yet, so `changed` below returns at once for it.
        let view = watch.see(&see);
        if view.serves_after(failed) {
            return view;
        }
        if tokio::time::timeout_at(deadline, watch.changed())
            .await
            .is_err()
        {
            return View {
                route: Route::Nowhere,
                ..view
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const ME: NodeId = 1;

    fn leader(leader: NodeId, term: u64) -> View {
        View::new(ME, Some(leader), ServerState::Follower, term)
    }

    #[test]
    fn a_replica_serves_only_while_in_the_leader_state() {
        let here = View::new(ME, Some(ME), ServerState::Leader, 4);
        assert_eq!(here.route, Route::Here);
        // Still naming itself leader after stepping down: nobody to send to yet.
        for state in [ServerState::Follower, ServerState::Candidate] {
            assert_eq!(View::new(ME, Some(ME), state, 4).route, Route::Nowhere);
        }
        assert_eq!(leader(3, 4).route, Route::Leader(3));
        assert_eq!(
            View::new(ME, None, ServerState::Candidate, 4).route,
            Route::Nowhere
        );
    }

    #[test]
    fn a_failed_leadership_is_avoided_only_in_the_term_it_failed_in() {
        let failed = leader(3, 5).failure();
        assert_eq!(failed, Some(Failed { leader: 3, term: 5 }));
        assert!(
            !leader(3, 5).serves_after(failed),
            "the leadership that failed"
        );
        assert!(
            leader(3, 6).serves_after(failed),
            "the same replica, re-elected"
        );
        assert!(leader(2, 5).serves_after(failed), "another replica");
        assert!(leader(3, 5).serves_after(None), "nothing failed yet");
        assert!(!View::new(ME, None, ServerState::Candidate, 6).serves_after(failed));
        // This replica's own failed leadership, and the same one in a later term.
        let own = View::new(ME, Some(ME), ServerState::Leader, 7);
        assert!(!own.serves_after(own.failure()));
        assert!(View::new(ME, Some(ME), ServerState::Leader, 8).serves_after(own.failure()));
    }

    #[test]
    fn only_a_request_nobody_forwarded_moves_and_retries() {
        assert_eq!(step(Route::Here, false), Step::ServeHere);
        assert_eq!(step(Route::Leader(3), true), Step::Forward(3));
        assert_eq!(step(Route::Leader(3), false), Step::NoLeader);
        assert_eq!(step(Route::Nowhere, true), Step::NoLeader);

        let now = Instant::now();
        let later = now + Duration::from_millis(100);
        assert!(retry_elsewhere(true, true, now, later));
        assert!(
            !retry_elsewhere(false, true, now, later),
            "not a retryable failure"
        );
        assert!(
            !retry_elsewhere(true, false, now, later),
            "a forwarded request"
        );
        assert!(
            !retry_elsewhere(true, true, later, later),
            "the deadline passed"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_passes_over_the_failed_term_and_takes_the_next() {
        let (views, mut watch) = watch::channel(leader(3, 5));
        let failed = Some(Failed { leader: 3, term: 5 });
        let deadline = Instant::now() + Duration::from_secs(5);
        let elected = tokio::spawn(async move {
            // Still term 5 (another field changed): not yet.
            tokio::task::yield_now().await;
            views.send_replace(leader(3, 5));
            tokio::task::yield_now().await;
            views.send_replace(leader(3, 6));
            views
        });
        let view = wait_for_leader(&mut watch, |view| *view, failed, deadline).await;
        assert_eq!(view, leader(3, 6));
        assert!(Instant::now() < deadline, "answered when the term changed");
        assert!(elected.await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_ends_at_the_deadline_with_no_route() {
        let (_views, mut watch) = watch::channel(leader(3, 5));
        let failed = Some(Failed { leader: 3, term: 5 });
        // Paused time: the clock moves only when every task waits, straight to the deadline.
        let deadline = Instant::now() + Duration::from_secs(5);
        let view = wait_for_leader(&mut watch, |view| *view, failed, deadline).await;
        assert_eq!(view.route, Route::Nowhere);
        assert!(Instant::now() >= deadline, "gave up before the deadline");
    }
}
