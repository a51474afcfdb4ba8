//! `OrderBatcher`: folds concurrent orders into one Raft entry.
//!
//! openraft appends and replicates one entry per `client_write`, and the leader waits for the
//! entry to be flushed and acknowledged by a quorum before it commits. With one entry per
//! order, every order would pay that round on its own. The batcher keeps one `client_write` in
//! flight at a time (a [`BatchQueue`]); orders that arrive meanwhile wait, and the next write
//! carries all of them as one entry.
//!
//! With batching off (`--batch-max 1`), every order is its own concurrent `client_write`: the
//! baseline the benchmark compares against.

use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use prometheus_client::metrics::histogram::Histogram;
use tokio_util::sync::CancellationToken;

use crate::leadership::LeaderGate;
use crate::types::{NewOrder, NodeId, OrderBatch, OrderOutcome, Raft};
use api::batch::BatchQueue;

/// Why a proposed order has no outcome.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProposeError {
    /// This node is not (or no longer) the leader; the entry may or may not commit later.
    #[error("this node is not the Raft leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    /// No commit before the deadline: no quorum reachable, or this leader is isolated.
    #[error("the order was not committed within {0:?}")]
    Timeout(Duration),
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
    queue: Option<BatchQueue<NewOrder, Result<OrderOutcome, ProposeError>>>,
    write_timeout: Duration,
}

impl OrderBatcher {
    /// Starts the batching task (unless `max_batch` is 1). It stops at `shutdown`.
    pub fn start(
        raft: Raft,
        gate: LeaderGate,
        max_batch: usize,
        write_timeout: Duration,
        batch_sizes: Histogram,
        shutdown: CancellationToken,
    ) -> (Self, Option<tokio::task::JoinHandle<()>>) {
        if max_batch <= 1 {
            let batcher = Self {
                raft,
                gate,
                queue: None,
                write_timeout,
            };
            return (batcher, None);
        }
        let (proposer, proposer_gate) = (raft.clone(), gate.clone());
        let (queue, task) = BatchQueue::start(
            max_batch,
            batch_sizes,
            shutdown,
            move |orders: Vec<NewOrder>| {
                let (raft, gate) = (proposer.clone(), proposer_gate.clone());
                async move {
                    let count = orders.len();
                    match write(&raft, &gate, orders, write_timeout).await {
                        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
                        Err(err) => vec![Err(err); count],
                    }
                }
            },
        );
        let batcher = Self {
            raft,
            gate,
            queue: Some(queue),
            write_timeout,
        };
        (batcher, Some(task))
    }

    /// Proposes one order and waits for the number the state machine gave it.
    pub async fn propose(&self, order: NewOrder) -> Result<OrderOutcome, ProposeError> {
        let Some(queue) = &self.queue else {
            let mut outcomes =
                write(&self.raft, &self.gate, vec![order], self.write_timeout).await?;
            return outcomes
                .pop()
                .ok_or_else(|| ProposeError::Raft("the entry produced no outcome".into()));
        };
        // The batch answers within its own write deadline; queueing can add at most one more
        // write before ours starts.
        let deadline = self.write_timeout * 2;
        match tokio::time::timeout(deadline, queue.submit(order)).await {
            Ok(Ok(result)) => result,
            Ok(Err(stopped)) => Err(ProposeError::Raft(stopped.to_string())),
            Err(_) => Err(ProposeError::Timeout(deadline)),
        }
    }
}

/// One `client_write` with a deadline. An isolated leader does not step down by itself, so
/// without the deadline its callers would wait forever. The write passes the leader's gate,
/// which a leadership handover closes (the wait counts against the deadline).
async fn write(
    raft: &Raft,
    gate: &LeaderGate,
    orders: Vec<NewOrder>,
    deadline: Duration,
) -> Result<Vec<OrderOutcome>, ProposeError> {
    let count = orders.len();
    let written = tokio::time::timeout(deadline, async {
        let _pass = gate.read().await;
        raft.client_write(OrderBatch { orders }).await
    })
    .await;
    match written {
        Err(_) => Err(ProposeError::Timeout(deadline)),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
            Err(ProposeError::NotLeader {
                leader: forward.leader_id,
            })
        }
        Ok(Err(err)) => Err(ProposeError::Raft(err.to_string())),
        Ok(Ok(response)) if response.data.outcomes.len() == count => Ok(response.data.outcomes),
        Ok(Ok(response)) => Err(ProposeError::Raft(format!(
            "an entry of {count} orders produced {} outcomes",
            response.data.outcomes.len()
        ))),
    }
}
