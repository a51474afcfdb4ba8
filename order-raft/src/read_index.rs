//! `ReadIndex`: confirms that this replica leads, once for every caller waiting at that
//! moment (etcd batches its ReadIndex requests the same way).
//!
//! openraft's `ensure_linearizable` sends one heartbeat round to a quorum per call and then
//! waits until the state machine has applied everything committed when it was called. Many
//! concurrent callers do not need many rounds: a confirmation that *starts* after a caller
//! arrived serves that caller, because it proves leadership (and fixes the commit index) at a
//! point after the caller's request began. The [`BatchQueue`] gives exactly that: callers that
//! arrive while a round is in flight wait for the next one, which serves all of them.

use std::time::Duration;

use api::batch::BatchQueue;
use openraft::raft::ReadPolicy;
use prometheus_client::metrics::histogram::Histogram;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::OrderError;
use crate::leadership::LeaderGate;
use crate::types::Raft;

#[derive(Clone)]
pub struct ReadIndex {
    rounds: BatchQueue<(), Result<(), String>>,
}

impl ReadIndex {
    /// Starts the task that runs the rounds; each round gives up after `timeout` (an isolated
    /// leader cannot confirm anything). Stops at `shutdown`.
    pub fn start(
        raft: Raft,
        gate: LeaderGate,
        timeout: Duration,
        sizes: Histogram,
        shutdown: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let (rounds, task) = BatchQueue::start(4096, sizes, shutdown, move |waiting: Vec<()>| {
            let (raft, gate) = (raft.clone(), gate.clone());
            async move {
                let confirmed = tokio::time::timeout(timeout, async {
                    // A handover keeps the leader silent; confirming would break the silence.
                    let _pass = gate.read().await;
                    raft.ensure_linearizable(ReadPolicy::ReadIndex).await
                })
                .await;
                let answer = match confirmed {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(err)) => Err(err.to_string()),
                    Err(_) => Err(format!("no quorum answered within {timeout:?}")),
                };
                vec![answer; waiting.len()]
            }
        });
        (Self { rounds }, task)
    }

    /// Returns once this replica has been confirmed as leader by a round that started after
    /// this call, and its state machine has applied everything committed at that point.
    pub async fn confirm(&self) -> Result<(), OrderError> {
        match self.rounds.submit(()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(OrderError::ReadNotConfirmed(why)),
            Err(stopped) => Err(OrderError::ReadNotConfirmed(stopped.to_string())),
        }
    }
}
