//! `OrderBatcher`: folds concurrent orders into one Raft entry, and [`propose`], the one way
//! anything is written to the log.
//!
//! openraft appends and replicates one entry per `client_write`, and the entry commits only
//! once a quorum has flushed it (openraft 0.10 sends it to the followers while the leader's own
//! flush is still running; the leader's copy counts towards the quorum once flushed). With one
//! entry per order, every order would pay that round on its own. The batcher keeps a few `client_write`s
//! in flight at a time (a [`BatchQueue`]); orders that arrive meanwhile wait, and the next write
//! carries all of them as one entry.
//!
//! With batching off (`--batch-max 1`), every order is its own concurrent `client_write`: the
//! baseline the benchmark compares against.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use api::catalog::ReservationId;
use openraft::error::{ClientWriteError, RaftError};
use prometheus_client::metrics::histogram::Histogram;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::faults::Faults;
use crate::leadership::LeaderGate;
use crate::types::{Decided, NewOrder, NodeId, OrderOutcome, Proposal, Raft};
use api::batch::BatchQueue;

/// Entries proposed at once: openraft appends and replicates them in order, so while one is
/// being flushed and acknowledged the next is already on its way to the followers.
const ENTRIES_IN_FLIGHT: usize = 2;

/// Why a proposal has no outcome.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProposeError {
    /// This node is not (or no longer) the leader; the entry may or may not commit later.
    #[error("this node is not the Raft leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    /// No commit before the deadline: no quorum reachable, or this leader is isolated. The
    /// entry may still commit later.
    #[error(
        "the order was not committed in time; it may still be placed (retry with the same Idempotency-Key to find out)"
    )]
    Timeout,
    /// The leader lost its quorum while waiting; the entry may still commit later.
    #[error("this leader lost its quorum before the order committed")]
    QuorumLost,
    #[error("raft failed: {0}")]
    Raft(String),
}

/// Proposes orders to Raft, batched.
#[derive(Clone)]
pub struct OrderBatcher {
    raft: Raft,
    gate: LeaderGate,
    /// `None` when batching is off.
    queue: Option<BatchQueue<(NewOrder, Instant), Result<OrderOutcome, ProposeError>>>,
    faults: Faults,
}

impl OrderBatcher {
    /// Starts the batching task (unless `max_batch` is 1). It stops at `shutdown`.
    pub fn start(
        raft: Raft,
        gate: LeaderGate,
        max_batch: usize,
        batch_sizes: Histogram,
        faults: Faults,
        shutdown: CancellationToken,
    ) -> (Self, Option<tokio::task::JoinHandle<()>>) {
        if max_batch <= 1 {
            let batcher = Self {
                raft,
                gate,
                queue: None,
                faults,
            };
            return (batcher, None);
        }
        let (proposer, proposer_gate) = (raft.clone(), gate.clone());
        let (queue, task) = BatchQueue::start_pipelined(
            max_batch,
            ENTRIES_IN_FLIGHT,
            batch_sizes,
            shutdown,
            move |items: Vec<(NewOrder, Instant)>| {
                let (raft, gate) = (proposer.clone(), proposer_gate.clone());
                async move {
                    let count = items.len();
                    // The entry may take as long as its most patient order; each order's own
                    // caller stops waiting at its own deadline.
                    let deadline = items.iter().map(|(_, d)| *d).max();
                    let orders = items.into_iter().map(|(order, _)| order).collect();
                    match propose(&raft, &gate, orders, Vec::new(), deadline).await {
                        Ok(decided) => decided.orders.into_iter().map(Ok).collect(),
                        Err(err) => vec![Err(err); count],
                    }
                }
            },
        );
        let batcher = Self {
            raft,
            gate,
            queue: Some(queue),
            faults,
        };
        (batcher, Some(task))
    }

    /// Proposes one order and waits, until `deadline`, for what the state machine decided.
    pub async fn propose(
        &self,
        order: NewOrder,
        deadline: Instant,
    ) -> Result<OrderOutcome, ProposeError> {
        // Fault injection (`--break ack-before-commit`): answered before the entry commits.
        if let Some(number) = self.faults.early_ack_number() {
            let batcher = self.clone();
            tokio::spawn(async move {
                let outcome = batcher.write(order, deadline).await;
                tracing::debug!(
                    number,
                    ?outcome,
                    "fault injection: the order answered early was written"
                );
            });
            return Ok(OrderOutcome::Placed(number));
        }
        self.write(order, deadline).await
    }

    /// Writes one order (batched) and waits, until `deadline`, for what the state machine
    /// decided.
    pub(crate) async fn write(
        &self,
        order: NewOrder,
        deadline: Instant,
    ) -> Result<OrderOutcome, ProposeError> {
        let Some(queue) = &self.queue else {
            let decided = propose(
                &self.raft,
                &self.gate,
                vec![order],
                Vec::new(),
                Some(deadline),
            )
            .await?;
            return decided
                .orders
                .into_iter()
                .next()
                .ok_or_else(|| ProposeError::Raft("the entry produced no outcome".into()));
        };
        match tokio::time::timeout_at(deadline, queue.submit((order, deadline))).await {
            Ok(Ok(result)) => result,
            Ok(Err(stopped)) => Err(ProposeError::Raft(stopped.to_string())),
            Err(_) => Err(ProposeError::Timeout),
        }
    }
}

/// The leader's wall clock, stamped on every proposal (the state machine's clock).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Writes one entry of `orders` and `abandons` and waits, until `deadline` (if any), for its
/// outcomes. An isolated leader does not step down by itself, so without a deadline its
/// callers would wait forever. The write passes the leader's gate, which a leadership handover
/// closes (the wait counts against the deadline).
pub async fn propose(
    raft: &Raft,
    gate: &LeaderGate,
    orders: Vec<NewOrder>,
    abandons: Vec<ReservationId>,
    deadline: Option<Instant>,
) -> Result<Decided, ProposeError> {
    let (order_count, abandon_count) = (orders.len(), abandons.len());
    let proposal = Proposal {
        stamp_ms: now_ms(),
        orders,
        abandons,
    };
    let write = async {
        let _pass = gate.read().await;
        raft.client_write(proposal).await
    };
    let written = match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, write)
            .await
            .map_err(|_| ProposeError::Timeout)?,
        None => write.await,
    };
    match written {
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
            Err(ProposeError::NotLeader {
                leader: forward.leader_id,
            })
        }
        Err(err) => Err(ProposeError::Raft(err.to_string())),
        Ok(response)
            if response.data.orders.len() == order_count
                && response.data.abandons.len() == abandon_count =>
        {
            Ok(response.data)
        }
        Ok(response) => Err(ProposeError::Raft(format!(
            "an entry of {order_count} orders and {abandon_count} abandonments produced {} and {} outcomes",
            response.data.orders.len(),
            response.data.abandons.len()
        ))),
    }
}

/// How long the sweeper's abandonments may take to commit.
pub const SWEEP_WRITE_TIMEOUT: Duration = Duration::from_secs(2);
