//! `OrderBatcher`: folds concurrent orders into one Raft entry.
//!
//! openraft appends and replicates one entry per `client_write`, and the leader waits for the
//! entry to be flushed and acknowledged by a quorum before it commits. With one entry per
//! order, every order would pay that round on its own. The batcher keeps one `client_write` in
//! flight at a time; orders that arrive meanwhile wait in a queue, and the next write carries
//! all of them as one entry. Under load, the batch grows until one commit round serves every
//! waiting order; with a single client it adds nothing but a channel hop.
//!
//! With batching off (`--batch-max 1`), every order is its own concurrent `client_write`: the
//! baseline the benchmark compares against.

use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::types::{NewOrder, NodeId, OrderBatch, OrderOutcome, Raft};

/// Why a proposed order has no outcome.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProposeError {
    /// This node is not (or no longer) the leader; the entry may or may not commit later.
    #[error("this node is not the Raft leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    /// No commit before the deadline: no quorum reachable, or this leader is isolated.
    #[error("the order was not committed within {0:?}")]
    Timeout(Duration),
    #[error("raft failed: {0}")]
    Raft(String),
}

type Reply = oneshot::Sender<Result<OrderOutcome, ProposeError>>;

/// Proposes orders to Raft, batched.
#[derive(Clone)]
pub struct OrderBatcher {
    raft: Raft,
    /// `None` when batching is off.
    queue: Option<mpsc::Sender<(NewOrder, Reply)>>,
    write_timeout: Duration,
}

impl OrderBatcher {
    /// Starts the batching task (unless `max_batch` is 1). It stops at `shutdown`.
    pub fn start(
        raft: Raft,
        max_batch: usize,
        write_timeout: Duration,
        batch_sizes: Histogram,
        shutdown: CancellationToken,
    ) -> (Self, Option<tokio::task::JoinHandle<()>>) {
        if max_batch <= 1 {
            let batcher = Self {
                raft,
                queue: None,
                write_timeout,
            };
            return (batcher, None);
        }
        let (tx, rx) = mpsc::channel(max_batch * 16);
        let batcher = Self {
            raft: raft.clone(),
            queue: Some(tx),
            write_timeout,
        };
        let task = tokio::spawn(run(
            raft,
            rx,
            max_batch,
            write_timeout,
            batch_sizes,
            shutdown,
        ));
        (batcher, Some(task))
    }

    /// Proposes one order and waits for the number the state machine gave it.
    pub async fn propose(&self, order: NewOrder) -> Result<OrderOutcome, ProposeError> {
        let Some(queue) = &self.queue else {
            let mut outcomes = write(&self.raft, vec![order], self.write_timeout).await?;
            return outcomes
                .pop()
                .ok_or_else(|| ProposeError::Raft("the entry produced no outcome".into()));
        };
        let (reply, answer) = oneshot::channel();
        queue
            .send((order, reply))
            .await
            .map_err(|_| ProposeError::Raft("the batcher has stopped".into()))?;
        // The batcher answers within its own write deadline; queueing can add at most one
        // more write before ours starts.
        match tokio::time::timeout(self.write_timeout * 2, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ProposeError::Raft("the batcher has stopped".into())),
            Err(_) => Err(ProposeError::Timeout(self.write_timeout * 2)),
        }
    }
}

async fn run(
    raft: Raft,
    mut queue: mpsc::Receiver<(NewOrder, Reply)>,
    max_batch: usize,
    write_timeout: Duration,
    batch_sizes: Histogram,
    shutdown: CancellationToken,
) {
    let mut waiting = Vec::with_capacity(max_batch);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            received = queue.recv_many(&mut waiting, max_batch) => {
                if received == 0 {
                    break;
                }
            }
        }
        let (orders, replies): (Vec<NewOrder>, Vec<Reply>) = waiting.drain(..).unzip();
        batch_sizes.observe(orders.len() as f64);
        match write(&raft, orders, write_timeout).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(err) => {
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}

/// One `client_write` with a deadline. An isolated leader does not step down by itself, so
/// without the deadline its callers would wait forever.
async fn write(
    raft: &Raft,
    orders: Vec<NewOrder>,
    deadline: Duration,
) -> Result<Vec<OrderOutcome>, ProposeError> {
    let count = orders.len();
    let written = tokio::time::timeout(deadline, raft.client_write(OrderBatch { orders })).await;
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
