//! `BatchQueue`: many callers, few batches in flight.
//!
//! Each caller submits one item and waits for its own answer. A task takes every item waiting
//! (up to a maximum), handles them together, and answers each caller. Only a few batches are in
//! flight at a time (one, unless the queue is started with more), so while they run the next
//! one fills up: under load a batch grows until one round trip serves everyone waiting, and a
//! lone caller pays nothing but a channel hop. Allowing a second or third batch in flight lets a
//! pipeline of stages (front-end, leader, catalog, log) keep every stage busy at once.
//!
//! The catalog's stock writer uses it (one synced commit for many buys), and so does the order
//! leader, twice: for the catalog buys of concurrent orders (one HTTP call) and for their Raft
//! proposals (one log entry, one fsync round).

use std::future::Future;

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The queue was shut down before the item was answered.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the batching task has stopped")]
pub struct Stopped;

pub struct BatchQueue<T, R> {
    items: mpsc::Sender<(T, oneshot::Sender<R>)>,
}

impl<T, R> Clone for BatchQueue<T, R> {
    fn clone(&self) -> Self {
        Self {
            items: self.items.clone(),
        }
    }
}

impl<T: Send + 'static, R: Send + 'static> BatchQueue<T, R> {
    /// Starts the batching task with one batch in flight at a time. `handle` gets each batch
    /// and must return one answer per item, in order. The task stops at `shutdown`; items still
    /// queued are answered with [`Stopped`].
    pub fn start<F, Fut>(
        max_batch: usize,
        sizes: Histogram,
        shutdown: CancellationToken,
        handle: F,
    ) -> (Self, JoinHandle<()>)
    where
        F: FnMut(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<R>> + Send + 'static,
    {
        Self::start_pipelined(max_batch, 1, sizes, shutdown, handle)
    }

    /// [`Self::start`] with up to `in_flight` batches handled at once. Use 1 where batches
    /// must not overlap (a single writer, a read index round that must start after its
    /// callers arrived).
    pub fn start_pipelined<F, Fut>(
        max_batch: usize,
        in_flight: usize,
        sizes: Histogram,
        shutdown: CancellationToken,
        mut handle: F,
    ) -> (Self, JoinHandle<()>)
    where
        F: FnMut(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<R>> + Send + 'static,
    {
        let max_batch = max_batch.max(1);
        let in_flight = in_flight.max(1);
        let (items, mut queue) = mpsc::channel::<(T, oneshot::Sender<R>)>(max_batch * 16);
        let task = tokio::spawn(async move {
            let mut waiting = Vec::with_capacity(max_batch);
            let mut running = FuturesUnordered::new();
            loop {
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => break,
                    Some(()) = running.next(), if !running.is_empty() => continue,
                    received = queue.recv_many(&mut waiting, max_batch), if running.len() < in_flight => {
                        if received == 0 {
                            break;
                        }
                    }
                }
                let (batch, replies): (Vec<T>, Vec<oneshot::Sender<R>>) = waiting.drain(..).unzip();
                sizes.observe(batch.len() as f64);
                let answers = handle(batch);
                running.push(async move {
                    let answers = answers.await;
                    debug_assert_eq!(answers.len(), replies.len());
                    for (reply, answer) in replies.into_iter().zip(answers) {
                        // A caller that gave up has dropped its receiver; nothing to do.
                        let _ = reply.send(answer);
                    }
                });
            }
        });
        (Self { items }, task)
    }

    /// Submits one item and waits for its answer.
    pub async fn submit(&self, item: T) -> Result<R, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.items.send((item, reply)).await.map_err(|_| Stopped)?;
        answer.await.map_err(|_| Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_items_share_batches_and_each_gets_its_own_answer() {
        let sizes = Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0].into_iter());
        let (gate_open, gate) = tokio::sync::watch::channel(false);
        let (queue, _task) = BatchQueue::start(
            64,
            sizes,
            CancellationToken::new(),
            move |items: Vec<u32>| {
                let mut gate = gate.clone();
                async move {
                    // Hold the first batch until every caller has queued.
                    let _ = gate.wait_for(|open| *open).await;
                    items.into_iter().map(|i| i * 10).collect::<Vec<_>>()
                }
            },
        );
        let callers: Vec<_> = (0..20u32)
            .map(|i| {
                let queue = queue.clone();
                tokio::spawn(async move { (i, queue.submit(i).await.unwrap()) })
            })
            .collect();
        tokio::task::yield_now().await;
        gate_open.send_replace(true);
        for caller in callers {
            let (i, answer) = caller.await.unwrap();
            assert_eq!(answer, i * 10);
        }
    }

    #[tokio::test]
    async fn a_pipelined_queue_runs_several_batches_at_once() {
        let sizes = Histogram::new([1.0].into_iter());
        let running = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (gate_open, gate) = tokio::sync::watch::channel(false);
        let (queue, _task) = BatchQueue::start_pipelined(1, 3, sizes, CancellationToken::new(), {
            let (running, most) = (running.clone(), most.clone());
            move |items: Vec<u32>| {
                let (running, most, mut gate) = (running.clone(), most.clone(), gate.clone());
                async move {
                    use std::sync::atomic::Ordering;
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    let _ = gate.wait_for(|open| *open).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    items
                }
            }
        });
        let callers: Vec<_> = (0..6u32)
            .map(|i| {
                let queue = queue.clone();
                tokio::spawn(async move { queue.submit(i).await.unwrap() })
            })
            .collect();
        // Wait (with a deadline) until three batches are running at once.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while most.load(std::sync::atomic::Ordering::SeqCst) < 3 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never three batches at once"
            );
            tokio::task::yield_now().await;
        }
        gate_open.send_replace(true);
        for (i, caller) in callers.into_iter().enumerate() {
            assert_eq!(caller.await.unwrap(), i as u32);
        }
        assert_eq!(
            most.load(std::sync::atomic::Ordering::SeqCst),
            3,
            "never more than three"
        );
    }

    #[tokio::test]
    async fn a_stopped_queue_says_so() {
        let sizes = Histogram::new([1.0].into_iter());
        let stop = CancellationToken::new();
        let (queue, task) = BatchQueue::start(
            8,
            sizes,
            stop.clone(),
            |items: Vec<u8>| async move { items },
        );
        stop.cancel();
        task.await.unwrap();
        assert!(queue.submit(1).await.is_err());
    }
}
