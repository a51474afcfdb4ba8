//! The single writer of stock: buys and restocks, group-committed.
//!
//! Every change goes through one task (a [`BatchQueue`]), so buys of the same toy are
//! serialized and can never oversell. The task takes every command waiting in its queue,
//! applies them in arrival order to a working copy, writes all their effects in one synced
//! RocksDB batch (one fsync for many buys), publishes the new state to readers, pushes the
//! invalidations, and only then answers each caller. A caller that has its buy acknowledged
//! can therefore never read the pre-buy quantity from any front-end cache.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use api::batch::BatchQueue;
use api::cache_lease::StaleToy;
use api::catalog::{BuyOutcome, BuyRequest, VersionedProduct};
use api::order::valid_request_id;
use parking_lot::RwLock;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cache_lease::CacheLeases;
use crate::error::CatalogError;
use crate::metrics::CatalogMetrics;
use crate::store::{BuyRecord, StockStore, ToyState, Toys};

/// Most commands folded into one commit.
const MAX_BATCH: usize = 512;

/// A change to the stock.
enum Command {
    Buy(BuyRequest),
    Restock,
}

/// What a command did, in the same order as the commands.
enum Answer {
    Buy(Result<BuyOutcome, CatalogError>),
    Restock(Result<Vec<String>, CatalogError>),
}

/// The handle request handlers and the restock loop use.
#[derive(Clone)]
pub struct Ledger {
    commands: BatchQueue<Command, Answer>,
    toys: Arc<RwLock<Toys>>,
}

impl Ledger {
    /// Starts the writer task. It stops when `shutdown` is cancelled; commands still queued are
    /// answered with [`CatalogError::ShuttingDown`].
    ///
    /// `hold_until`: no buy is answered before this instant. After a restart, front-ends may
    /// still hold leases granted by the previous process, which this one does not know of, and
    /// that process may have committed a buy without pushing its invalidation; waiting one
    /// lease length makes sure every front-end has either renewed with us (and emptied its
    /// cache, since its lease is `fresh` here) or stopped trusting its cache.
    pub fn start(
        store: Arc<StockStore>,
        leases: Arc<CacheLeases>,
        metrics: CatalogMetrics,
        hold_until: Instant,
        shutdown: CancellationToken,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), CatalogError> {
        let toys = Arc::new(RwLock::new(store.load()?));
        let writer = Arc::new(Writer {
            store,
            toys: toys.clone(),
            leases,
            metrics: metrics.clone(),
        });
        let (commands, task) = BatchQueue::start(
            MAX_BATCH,
            metrics.commit_batch_size.clone(),
            shutdown,
            move |commands: Vec<Command>| {
                let writer = writer.clone();
                async move {
                    // Checked first: even an expired sleep waits for the timer's next tick.
                    if Instant::now() < hold_until {
                        tokio::time::sleep_until(hold_until).await;
                    }
                    writer.commit(commands).await
                }
            },
        );
        Ok((Self { commands, toys }, task))
    }

    /// Buys `request.quantity` of a toy, once per request id.
    pub async fn buy(&self, request: BuyRequest) -> Result<BuyOutcome, CatalogError> {
        if request.quantity == 0 {
            return Err(CatalogError::InvalidQuantity);
        }
        if !valid_request_id(&request.request_id) {
            return Err(CatalogError::InvalidRequestId);
        }
        match self.commands.submit(Command::Buy(request)).await {
            Ok(Answer::Buy(result)) => result,
            Ok(Answer::Restock(_)) => {
                Err(CatalogError::Storage("a buy got a restock's answer".into()))
            }
            Err(_) => Err(CatalogError::ShuttingDown),
        }
    }

    /// Several buys at once, answered in order. They are queued together, so they usually
    /// share one commit.
    pub async fn buy_many(
        &self,
        requests: Vec<BuyRequest>,
    ) -> Vec<Result<BuyOutcome, CatalogError>> {
        futures::future::join_all(requests.into_iter().map(|request| self.buy(request))).await
    }

    /// Refills every toy whose stock is 0; returns their names.
    pub async fn restock(&self) -> Result<Vec<String>, CatalogError> {
        match self.commands.submit(Command::Restock).await {
            Ok(Answer::Restock(result)) => result,
            Ok(Answer::Buy(_)) => Err(CatalogError::Storage("a restock got a buy's answer".into())),
            Err(_) => Err(CatalogError::ShuttingDown),
        }
    }

    pub fn product(&self, name: &str) -> Option<VersionedProduct> {
        self.toys
            .read()
            .get(name)
            .map(|state| versioned(name, state))
    }

    pub fn products(&self) -> Vec<VersionedProduct> {
        self.toys
            .read()
            .iter()
            .map(|(name, state)| versioned(name, state))
            .collect()
    }
}

fn versioned(name: &str, state: &ToyState) -> VersionedProduct {
    VersionedProduct {
        name: name.to_string(),
        price: state.price,
        quantity: state.quantity,
        version: state.version,
    }
}

struct Writer {
    store: Arc<StockStore>,
    toys: Arc<RwLock<Toys>>,
    leases: Arc<CacheLeases>,
    metrics: CatalogMetrics,
}

/// The result of applying one batch to the working copy.
#[derive(Default)]
struct Applied {
    changed: Toys,
    records: Vec<(String, BuyRecord)>,
    answers: Vec<Answer>,
}

impl Writer {
    /// Applies and durably commits one batch, makes it visible, invalidates caches, and returns
    /// the answers: the queue hands them to the callers only now.
    async fn commit(self: Arc<Self>, commands: Vec<Command>) -> Vec<Answer> {
        let count = commands.len();
        let writer = self.clone();
        let applied = match tokio::task::spawn_blocking(move || writer.apply(commands)).await {
            Ok(applied) => applied,
            Err(err) => {
                // Nothing of this batch was committed.
                tracing::error!(%err, "the stock writer's batch failed");
                return (0..count)
                    .map(|_| Answer::Buy(Err(CatalogError::Storage(err.to_string()))))
                    .collect();
            }
        };
        self.publish(&applied).await;
        applied.answers
    }

    /// Applies commands to a working copy and commits the result (blocking: fsync).
    fn apply(&self, commands: Vec<Command>) -> Applied {
        let mut applied = Applied::default();
        let mut working: Toys = self.toys.read().clone();
        // Request ids first seen in this batch: a duplicate within one batch must see the
        // first one's outcome, which is not on disk yet.
        let mut recorded: HashMap<String, BuyRecord> = HashMap::new();
        for command in commands {
            let answer = match command {
                Command::Buy(request) => {
                    Answer::Buy(self.apply_buy(&mut working, &mut recorded, &mut applied, request))
                }
                Command::Restock => {
                    let level = self.store.initial_stock();
                    let mut names = Vec::new();
                    for (name, state) in working.iter_mut().filter(|(_, s)| s.quantity == 0) {
                        state.quantity = level;
                        state.version += 1;
                        applied.changed.insert(name.clone(), state.clone());
                        names.push(name.clone());
                    }
                    Answer::Restock(Ok(names))
                }
            };
            applied.answers.push(answer);
        }
        match self.store.commit(&applied.changed, &applied.records) {
            Ok(()) => self.count(&applied),
            Err(err) => {
                tracing::error!(%err, "cannot commit stock changes");
                // Nothing of this batch is durable: fail every caller and forget the changes.
                let message = err.to_string();
                for answer in &mut applied.answers {
                    *answer = match answer {
                        Answer::Buy(_) => Answer::Buy(Err(CatalogError::Storage(message.clone()))),
                        Answer::Restock(_) => {
                            Answer::Restock(Err(CatalogError::Storage(message.clone())))
                        }
                    };
                }
                applied.changed.clear();
                applied.records.clear();
            }
        }
        applied
    }

    fn apply_buy(
        &self,
        working: &mut Toys,
        recorded: &mut HashMap<String, BuyRecord>,
        applied: &mut Applied,
        request: BuyRequest,
    ) -> Result<BuyOutcome, CatalogError> {
        let earlier = match recorded.get(&request.request_id) {
            Some(record) => Some(record.clone()),
            None => self.store.find_buy(&request.request_id)?,
        };
        if let Some(record) = earlier {
            if record.name != request.name || record.quantity != request.quantity {
                return Err(CatalogError::RequestIdReused(request.request_id));
            }
            self.metrics.duplicate_buys.inc();
            return Ok(record.outcome);
        }
        let Some(state) = working.get_mut(&request.name) else {
            // Unknown toys are not recorded: the answer cannot change, so a retry gets it too.
            return Ok(BuyOutcome::UnknownProduct);
        };
        let outcome = if state.quantity >= request.quantity {
            state.quantity -= request.quantity;
            state.version += 1;
            applied.changed.insert(request.name.clone(), state.clone());
            BuyOutcome::Bought {
                remaining: state.quantity,
                version: state.version,
            }
        } else {
            BuyOutcome::OutOfStock {
                available: state.quantity,
            }
        };
        let record = BuyRecord {
            name: request.name,
            quantity: request.quantity,
            outcome: outcome.clone(),
        };
        recorded.insert(request.request_id.clone(), record.clone());
        applied.records.push((request.request_id, record));
        Ok(outcome)
    }

    /// Counts what a committed batch did.
    fn count(&self, applied: &Applied) {
        if !applied.changed.is_empty() || !applied.records.is_empty() {
            self.metrics.commits.inc();
        }
        for (_, record) in &applied.records {
            match record.outcome {
                BuyOutcome::Bought { .. } => {
                    self.metrics.buys.inc();
                    self.metrics.units_sold.inc_by(u64::from(record.quantity));
                }
                BuyOutcome::OutOfStock { .. } => {
                    self.metrics.out_of_stock.inc();
                }
                BuyOutcome::UnknownProduct => {}
            }
        }
        for answer in &applied.answers {
            if let Answer::Restock(Ok(names)) = answer {
                self.metrics.restocked_toys.inc_by(names.len() as u64);
                if !names.is_empty() {
                    tracing::info!(toys = ?names, "restocked");
                }
            }
        }
    }

    /// Makes a committed batch visible to readers and invalidates the front-ends' caches.
    async fn publish(&self, applied: &Applied) {
        if applied.changed.is_empty() {
            return;
        }
        {
            let mut toys = self.toys.write();
            for (name, state) in &applied.changed {
                toys.insert(name.clone(), state.clone());
            }
        }
        let stale: Vec<StaleToy> = applied
            .changed
            .iter()
            .map(|(name, state)| StaleToy {
                name: name.clone(),
                version: state.version,
            })
            .collect();
        self.leases.push(&stale).await;
    }
}

/// Calls [`Ledger::restock`] every `interval` until `shutdown`.
pub async fn restock_loop(ledger: Ledger, interval: Duration, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {
                if let Err(err) = ledger.restock().await {
                    tracing::warn!(%err, "restock failed");
                }
            }
        }
    }
}
