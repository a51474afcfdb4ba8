//! `OrderNode`: what one replica does with an order or an order query.
//!
//! On the Raft leader, an order is: dedup check → leadership confirmed (no sale without a
//! quorum) → catalog reservation, idempotent by (request id, attempt) → proposal through the
//! [`OrderBatcher`] → the number the state machine assigned → the reservation confirmed in
//! the background ([`crate::settlement`]). One deadline, from the sender's `x-budget-ms`,
//! bounds every step. A replica that is not the leader forwards the request to the leader
//! once (a forwarded request is never forwarded again, so there are no loops); during an
//! election it waits for the new leader within the request's budget. Order queries are
//! served by the leader after a read index ([`ReadIndex`]), so a reply never misses an
//! acknowledged order. Where a request goes, and which failed leadership it avoids, is
//! decided in [`routing`].

mod routing;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use api::catalog::{Reservation, ReservationId, ReserveOutcome};
use api::client::CallError;
use api::order::{Hop, OrderPlaced, OrderRecord, PlaceOrder, ReplicaClient, Selection};
use api::request_id::{REQUEST_ID_RULE, valid_request_id};
use api::status::NodeStatus;
use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::batcher::{OrderBatcher, ProposeError};
use crate::error::OrderError;
use crate::faults::Faults;
use crate::health::{LeaderContact, Readiness, millis_since_quorum_ack};
use crate::metrics::NodeMetrics;
use crate::network::SnapshotReceiver;
use crate::read_index::ReadIndex;
use crate::reserver::CatalogReserver;
use crate::settlement::Settler;
use crate::store::OrderReader;
use crate::types::{NewOrder, NodeId, OrderOutcome, Raft};
use routing::{Failed, MetricsWatch, Route, Step, View};

/// The parts of the leader's order path an [`OrderNode`] drives.
pub struct OrderPath {
    pub batcher: OrderBatcher,
    pub reserver: CatalogReserver,
    pub settler: Settler,
    /// Confirms leadership, once for every caller waiting at that moment.
    pub read_index: ReadIndex,
    pub faults: Faults,
}

/// This replica's own state an [`OrderNode`] reads: Raft, the applied orders, and what
/// `/health` answers.
pub struct Replica {
    pub id: NodeId,
    pub raft: Raft,
    pub reader: OrderReader,
    pub readiness: Arc<Readiness>,
    /// When this replica last heard from its leader (touched by the Raft RPC handlers).
    pub contact: Arc<LeaderContact>,
    /// Where snapshots from the leader are received (the snapshot RPC handler).
    pub snapshots: SnapshotReceiver,
}

pub struct OrderNode {
    id: NodeId,
    // Read by the order routes (`routes.rs`) too.
    pub(crate) raft: Raft,
    pub(crate) reader: OrderReader,
    pub(crate) faults: Faults,
    pub(crate) readiness: Arc<Readiness>,
    metrics: NodeMetrics,
    /// The other replicas, from the address book: where to forward to the leader.
    peers: BTreeMap<NodeId, ReplicaClient>,
    batcher: OrderBatcher,
    reserver: CatalogReserver,
    settler: Settler,
    read_index: ReadIndex,
    contact: Arc<LeaderContact>,
    pub(crate) snapshots: SnapshotReceiver,
    /// The replica the front-end selected (0: none yet); [`crate::leadership`] watches it.
    selection: watch::Sender<NodeId>,
    /// How long a request may take here when its sender did not say (`x-budget-ms`), and at
    /// most: half the reservation bound, so no live order's reservation is ever swept.
    max_budget: Duration,
    /// A leader whose last quorum acknowledgement is younger than this may sell without
    /// asking its followers again: the leader lease.
    lease: Duration,
}

impl OrderNode {
    /// A node serving orders through `path`, forwarding to `peers` (the other replicas).
    /// Returns it with the receiver of the front-end's selection, for [`crate::leadership`].
    pub fn new(
        replica: Replica,
        path: OrderPath,
        peers: BTreeMap<NodeId, ReplicaClient>,
        metrics: NodeMetrics,
        max_budget: Duration,
        lease: Duration,
    ) -> (Self, watch::Receiver<NodeId>) {
        let (selection, selected) = watch::channel(0);
        let node = Self {
            id: replica.id,
            raft: replica.raft,
            reader: replica.reader,
            faults: path.faults,
            readiness: replica.readiness,
            metrics,
            peers,
            batcher: path.batcher,
            reserver: path.reserver,
            settler: path.settler,
            read_index: path.read_index,
            contact: replica.contact,
            snapshots: replica.snapshots,
            selection,
            max_budget,
            lease,
        };
        (node, selected)
    }

    /// A Raft RPC from a leader this replica follows was accepted: see
    /// [`LeaderContact`].
    pub(crate) fn heard_from_leader(&self) {
        if let Some(silence) = self.contact.touch() {
            self.metrics
                .leader_silence_seconds
                .observe(silence.as_secs_f64());
        }
    }

    /// A leader's AppendEntries carried `entries` entries.
    pub(crate) fn entries_received(&self, entries: usize) {
        self.metrics.entries_received.inc_by(entries as u64);
    }

    /// The view, waiting (until `deadline`) for a leadership other than `failed` to be known:
    /// a request that arrives during an election is answered once it is over, not with a 503
    /// the sender must come back on.
    async fn route_avoiding(&self, failed: Option<Failed>, deadline: Instant) -> View {
        let see = |metrics: &routing::Metrics| View::of(self.id, metrics);
        routing::wait_for_leader(
            &mut MetricsWatch(self.raft.metrics()),
            see,
            failed,
            deadline,
        )
        .await
    }

    fn leader(&self, leader: NodeId) -> Result<&ReplicaClient, OrderError> {
        self.peers.get(&leader).ok_or_else(|| {
            OrderError::LeaderUnreachable(format!("node {leader} is not in the address book"))
        })
    }

    /// When a request that arrived now with `hop` must be answered.
    fn deadline(&self, hop: &Hop) -> Instant {
        Instant::now() + hop.budget.unwrap_or(self.max_budget).min(self.max_budget)
    }

    /// Places an order, here if this replica leads, else through the leader.
    pub async fn place(
        self: &Arc<Self>,
        order: PlaceOrder,
        hop: Hop,
    ) -> Result<OrderPlaced, OrderError> {
        validate(&order)?;
        let deadline = self.deadline(&hop);
        // A leader that could not serve (it died, stepped down, lost its quorum) is avoided
        // until another leadership is known (another replica, or this one in a later term);
        // the order (idempotent by request id) goes there, within the deadline. Only a
        // request nobody forwarded may move on: no forwarding loops.
        let may_move = hop.forwarded_by.is_none();
        let mut failed = None;
        loop {
            let view = self.route_avoiding(failed, deadline).await;
            match routing::step(view.route, may_move) {
                Step::ServeHere => {
                    let here = tokio::spawn(self.clone().place_here(order.clone(), deadline))
                        .await
                        .map_err(|err| OrderError::Internal(err.to_string()))?;
                    let not_leader = matches!(
                        here,
                        Err(OrderError::NotCommitted(ProposeError::NotLeader { .. }))
                    );
                    if !routing::retry_elsewhere(not_leader, may_move, Instant::now(), deadline) {
                        return here;
                    }
                    failed = view.failure();
                }
                Step::Forward(leader) => {
                    let client = self.leader(leader)?;
                    let sent = client.place(&order, self.onward(deadline));
                    match self.forwarded(sent, may_move, deadline).await {
                        Some(answer) => return answer,
                        None => failed = view.failure(),
                    }
                }
                Step::NoLeader => return Err(OrderError::NoLeader),
            }
        }
    }

    /// The leader's answer to a request this replica sent on (`sent`), or `None` when the
    /// leader could not serve it (it died, stepped down) and there is time to try another
    /// leadership.
    async fn forwarded<T>(
        &self,
        sent: impl Future<Output = Result<T, CallError>>,
        may_move: bool,
        deadline: Instant,
    ) -> Option<Result<T, OrderError>> {
        self.metrics.forwarded.inc();
        match sent.await {
            Err(err)
                if routing::retry_elsewhere(
                    err.is_retryable(),
                    may_move,
                    Instant::now(),
                    deadline,
                ) =>
            {
                None
            }
            answer => Some(answer.map_err(OrderError::from_leader)),
        }
    }

    /// The hop of a request this replica forwards, with what is left of `deadline`.
    fn onward(&self, deadline: Instant) -> Hop {
        Hop {
            forwarded_by: Some(self.id),
            budget: Some(deadline.saturating_duration_since(Instant::now())),
        }
    }

    /// Confirms that this replica still leads: a quorum acknowledged it within the lease, or
    /// it asks its followers now (one round for every caller waiting).
    async fn confirm_leadership(&self) -> Result<(), OrderError> {
        let recent = millis_since_quorum_ack(&self.raft.metrics().borrow_watched())
            .is_some_and(|ms| ms <= self.lease.as_millis() as u64);
        if recent {
            return Ok(());
        }
        self.read_index.confirm().await
    }

    /// Resolves once this replica no longer leads, or has had no quorum acknowledgement for
    /// two leases (checked every tenth of a lease). Two, not one: a leader starved of CPU for a
    /// moment still leads, and giving up on its orders would only cost retries.
    async fn quorum_lost(&self) {
        let patience = 2 * self.lease.as_millis() as u64;
        loop {
            let lost = {
                let metrics = self.raft.metrics();
                let metrics = metrics.borrow_watched();
                metrics.state != ServerState::Leader
                    || millis_since_quorum_ack(&metrics).is_none_or(|ms| ms > patience)
            };
            if lost {
                return;
            }
            tokio::time::sleep(self.lease / 10).await;
        }
    }

    /// Places an order on this leader. Runs as a task of its own: once the reservation is
    /// made, the steps after it run to completion (or to the deadline) even if the request that
    /// asked for it is dropped, so nothing is left half done.
    async fn place_here(
        self: Arc<Self>,
        order: PlaceOrder,
        deadline: Instant,
    ) -> Result<OrderPlaced, OrderError> {
        let arrived = Instant::now();
        let request = self.reader.request(&order.request_id)?;
        // Fast path for a retry whose first attempt committed.
        if let Some(earlier) = request.placed {
            return self.answer_duplicate(
                &order,
                earlier.number,
                earlier.name == order.name && earlier.quantity == order.quantity,
            );
        }
        // No sale without a quorum: a leader cut off from its followers reserves nothing.
        tokio::time::timeout_at(deadline, self.confirm_leadership())
            .await
            .map_err(|_| OrderError::ReadNotConfirmed("no quorum answered in time".into()))??;
        let reservation = Reservation {
            id: ReservationId {
                request_id: order.request_id.clone(),
                attempt: request.next_attempt(),
            },
            name: order.name.clone(),
            quantity: order.quantity,
        };
        let id = reservation.id.clone();
        let reserved = self
            .reserver
            .reserve(reservation, deadline)
            .await
            .map_err(OrderError::from_catalog)?;
        self.metrics
            .reserve_seconds
            .observe(arrived.elapsed().as_secs_f64());
        // Carried to the client, which holds every later query of the toy to it.
        let stock_version = match &reserved {
            ReserveOutcome::Reserved { version, .. } => Some(*version),
            _ => None,
        };
        match reserved {
            ReserveOutcome::Reserved { .. } => {}
            ReserveOutcome::OutOfStock { available } => {
                return Err(OrderError::OutOfStock {
                    name: order.name,
                    available,
                });
            }
            ReserveOutcome::UnknownProduct => return Err(OrderError::UnknownProduct(order.name)),
            // The log abandoned this attempt while we were reserving: try again.
            ReserveOutcome::Released => return Err(OrderError::Abandoned),
            // Not a fresh reservation: this request id's reservation is settled or too old to
            // use (README, "Retention"). Its order, if the log still remembers one, is the
            // answer; a read confirmed after the catalog answered sees every order whose
            // reservation the catalog had confirmed by then.
            ReserveOutcome::Confirmed | ReserveOutcome::Expired => {
                tokio::time::timeout_at(deadline, self.read_index.confirm())
                    .await
                    .map_err(|_| {
                        OrderError::ReadNotConfirmed("no quorum answered in time".into())
                    })??;
                return match self.reader.request(&order.request_id)?.placed {
                    Some(earlier) => self.answer_duplicate(
                        &order,
                        earlier.number,
                        earlier.name == order.name && earlier.quantity == order.quantity,
                    ),
                    None => Err(OrderError::RequestIdExpired(order.request_id)),
                };
            }
        }
        self.faults.check_crash_after_reserve(&order.request_id);
        let proposed = NewOrder {
            request_id: order.request_id.clone(),
            attempt: id.attempt,
            name: order.name.clone(),
            quantity: order.quantity,
        };
        // Waiting for the commit ends early when this leader loses its quorum: the entry may
        // still commit, but the sender should try a replica that can serve now.
        let proposed_at = Instant::now();
        let outcome = tokio::select! {
            outcome = self.batcher.propose(proposed, deadline) => outcome,
            () = self.quorum_lost() => Err(ProposeError::QuorumLost),
        }
        .inspect_err(|err| {
            self.metrics.write_failures.inc();
            // The reservation stays pending; the sweeper settles it through the log.
            tracing::warn!(request_id = %order.request_id, %err, "order not committed");
        })?;
        self.metrics
            .commit_seconds
            .observe(proposed_at.elapsed().as_secs_f64());
        match outcome {
            OrderOutcome::Placed(number) => {
                self.settler.confirm(id);
                self.metrics.orders_placed.inc();
                tracing::debug!(request_id = %order.request_id, number, "order committed");
                Ok(OrderPlaced {
                    order_number: number,
                    stock_version,
                })
            }
            // Another attempt holds the order; the sweeper releases this reservation.
            OrderOutcome::Duplicate(number) => self.answer_duplicate(&order, number, true),
            OrderOutcome::Conflict(number) => self.answer_duplicate(&order, number, false),
            OrderOutcome::Abandoned => Err(OrderError::Abandoned),
        }
    }

    fn answer_duplicate(
        &self,
        order: &PlaceOrder,
        number: u64,
        same: bool,
    ) -> Result<OrderPlaced, OrderError> {
        if !same {
            return Err(OrderError::RequestIdReused(order.request_id.clone()));
        }
        self.metrics.orders_deduplicated.inc();
        Ok(OrderPlaced {
            order_number: number,
            stock_version: None,
        })
    }

    /// Reads an order with linearizable semantics. An order this replica has applied is
    /// committed, and committed orders never change: it is answered at once, from here. Only a
    /// number not applied here needs the leader's read index (it may exist, newer than what
    /// this replica has seen).
    pub async fn lookup(&self, number: u64, hop: Hop) -> Result<OrderRecord, OrderError> {
        if let Some(order) = self.reader.order(number)? {
            return Ok(OrderRecord {
                number: order.number,
                name: order.name,
                quantity: order.quantity,
            });
        }
        // Fault injection (`--break local-read`): absent here means absent, unconfirmed.
        if self.faults.reads_locally() {
            return Err(OrderError::NoSuchOrder(number));
        }
        let deadline = self.deadline(&hop);
        let may_move = hop.forwarded_by.is_none();
        let mut failed = None;
        loop {
            let view = self.route_avoiding(failed, deadline).await;
            match routing::step(view.route, may_move) {
                Step::ServeHere => {
                    self.read_index.confirm().await?;
                    let order = self
                        .reader
                        .order(number)?
                        .ok_or(OrderError::NoSuchOrder(number))?;
                    return Ok(OrderRecord {
                        number: order.number,
                        name: order.name,
                        quantity: order.quantity,
                    });
                }
                Step::Forward(leader) => {
                    let client = self.leader(leader)?;
                    let sent = client.lookup(number, self.onward(deadline));
                    match self.forwarded(sent, may_move, deadline).await {
                        Some(answer) => return answer,
                        None => failed = view.failure(),
                    }
                }
                Step::NoLeader => return Err(OrderError::NoLeader),
            }
        }
    }

    /// The front-end selected `replica_id`. A selected replica that does not lead tells the
    /// leader too (best effort), in case the front-end could not: the leader then hands over.
    pub fn record_selection(self: &Arc<Self>, replica_id: NodeId) {
        let previous = self.selection.send_replace(replica_id);
        if previous == replica_id {
            return;
        }
        tracing::info!(selected = replica_id, "the front-end selected a replica");
        if replica_id == self.id
            && let Route::Leader(leader) =
                View::of(self.id, &self.raft.metrics().borrow_watched()).route
            && let Some(client) = self.peers.get(&leader).cloned()
        {
            tokio::spawn(async move {
                let selection = Selection { replica_id };
                if let Err(err) = client.announce_selection(&selection).await {
                    tracing::debug!(leader, %err, "could not pass the selection on to the leader");
                }
            });
        }
    }

    pub fn status(&self) -> NodeStatus {
        // Before borrowing Raft's metrics: `check` borrows them too, and a second borrow on this
        // thread while openraft waits to publish would deadlock (the watch's lock lets a waiting
        // writer go first).
        let health = match self.readiness.check() {
            Ok(()) => "ok",
            Err(why) => why.reason(),
        };
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        let summary = self.reader.summary();
        let role = match metrics.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        let selected = *self.selection.borrow();
        NodeStatus {
            id: self.id,
            role: role.to_string(),
            term: metrics.current_term,
            leader: metrics.current_leader,
            health: health.to_string(),
            last_log_index: metrics.last_log_index,
            applied_index: summary.last_applied.map(|id| id.index),
            purged_index: metrics.purged.as_ref().map(|id| id.index),
            selected_replica: (selected != 0).then_some(selected),
            orders: summary.counters.next_number,
            digest: hex::encode(summary.counters.digest),
            entries_received: self.metrics.entries_received.get(),
            snapshots_installed: self.reader.snapshots_installed(),
        }
    }
}

fn validate(order: &PlaceOrder) -> Result<(), OrderError> {
    if order.quantity == 0 {
        return Err(OrderError::InvalidOrder(
            "quantity must be at least 1".into(),
        ));
    }
    if !valid_request_id(&order.request_id) {
        return Err(OrderError::InvalidOrder(REQUEST_ID_RULE.into()));
    }
    if order.name.is_empty() || order.name.len() > 256 {
        return Err(OrderError::InvalidOrder(
            "toy name must be 1 to 256 bytes".into(),
        ));
    }
    Ok(())
}
