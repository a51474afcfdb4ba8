//! `OrderNode`: what one replica does with an order or an order query.
//!
//! On the Raft leader, an order is: dedup check → catalog buy with the order's request id
//! (idempotent there too) → proposal through the [`OrderBatcher`] → the number the state
//! machine assigned. A replica that is not the leader forwards the request to the leader once
//! (a forwarded request is never forwarded again, so there are no loops). Order queries are
//! served by the leader after `ensure_linearizable`, so a reply never misses an acknowledged
//! order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use api::catalog::{BuyOutcome, BuyRequest};
use api::client::ServiceClient;
use api::cluster::NodeAddrs;
use api::order::{
    NodeStatus, OrderPlaced, OrderRecord, PlaceOrder, REQUEST_ID_RULE, valid_request_id,
};
use openraft::ServerState;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::batcher::OrderBatcher;
use crate::buyer::CatalogBuyer;
use crate::error::OrderError;
use crate::store::OrderReader;
use crate::types::{NewOrder, NodeId, OrderOutcome, Raft};

/// Header marking a request one replica forwarded to another.
pub const FORWARDED_BY: &str = "x-forwarded-by";

/// Counters and gauges of one replica.
#[derive(Clone)]
pub struct NodeMetrics {
    pub orders_placed: Counter,
    pub orders_deduplicated: Counter,
    pub forwarded: Counter,
    pub entries_received: Counter,
    pub write_failures: Counter,
    pub batch_size: Histogram,
    pub buy_batch_size: Histogram,
    pub term: Gauge,
    pub last_log_index: Gauge,
    pub applied_index: Gauge,
    pub is_leader: Gauge,
}

impl NodeMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            orders_placed: Counter::default(),
            orders_deduplicated: Counter::default(),
            forwarded: Counter::default(),
            entries_received: Counter::default(),
            write_failures: Counter::default(),
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            buy_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            term: Gauge::default(),
            last_log_index: Gauge::default(),
            applied_index: Gauge::default(),
            is_leader: Gauge::default(),
        };
        registry.register(
            "orders_placed",
            "Orders this leader committed",
            metrics.orders_placed.clone(),
        );
        registry.register(
            "orders_deduplicated",
            "Orders answered from an earlier request with the same id",
            metrics.orders_deduplicated.clone(),
        );
        registry.register(
            "forwarded",
            "Requests forwarded to the Raft leader",
            metrics.forwarded.clone(),
        );
        registry.register(
            "entries_received",
            "Log entries received from a leader (catch-up and replication)",
            metrics.entries_received.clone(),
        );
        registry.register(
            "write_failures",
            "Orders whose Raft write failed or timed out",
            metrics.write_failures.clone(),
        );
        registry.register(
            "batch_size",
            "Orders per Raft entry",
            metrics.batch_size.clone(),
        );
        registry.register(
            "buy_batch_size",
            "Catalog buys per POST /buys call",
            metrics.buy_batch_size.clone(),
        );
        registry.register("raft_term", "Current Raft term", metrics.term.clone());
        registry.register(
            "raft_last_log_index",
            "Index of the last log entry",
            metrics.last_log_index.clone(),
        );
        registry.register(
            "raft_applied_index",
            "Index of the last applied entry",
            metrics.applied_index.clone(),
        );
        registry.register(
            "raft_is_leader",
            "1 on the Raft leader",
            metrics.is_leader.clone(),
        );
        metrics
    }
}

/// Test-only fault points, armed through `POST /faults` when fault injection is enabled.
#[derive(Default)]
pub struct Faults {
    crash_after_buy: Mutex<Option<String>>,
}

impl Faults {
    /// Arms a crash (abort, as kill -9 would) after the catalog buy of `request_id`.
    pub fn arm_crash_after_buy(&self, request_id: String) {
        *self.crash_after_buy.lock() = Some(request_id);
    }

    fn check_crash_after_buy(&self, request_id: &str) {
        if self.crash_after_buy.lock().as_deref() == Some(request_id) {
            tracing::error!(
                request_id,
                "fault injection: crashing between the catalog buy and the Raft write"
            );
            std::process::abort();
        }
    }
}

/// Where a request must be served.
enum Route {
    Here,
    Leader(NodeId),
    Nowhere,
}

pub struct OrderNode {
    pub id: NodeId,
    pub raft: Raft,
    pub reader: OrderReader,
    pub metrics: NodeMetrics,
    pub faults: Faults,
    /// The address book: where to forward to the leader.
    pub peers: Arc<NodeAddrs>,
    pub batcher: OrderBatcher,
    pub buyer: CatalogBuyer,
    /// For forwarding to the leader.
    pub client: ServiceClient,
    /// Id the front-end selected (0: none yet).
    pub selected_leader: AtomicU64,
    /// Deadline for confirming leadership before a read.
    pub read_timeout: Duration,
}

impl OrderNode {
    fn route(&self) -> Route {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        match metrics.current_leader {
            Some(leader) if leader == self.id && metrics.state == ServerState::Leader => {
                Route::Here
            }
            Some(leader) if leader != self.id => Route::Leader(leader),
            _ => Route::Nowhere,
        }
    }

    fn leader_url(&self, leader: NodeId) -> Result<&str, OrderError> {
        self.peers.get(leader).ok_or_else(|| {
            OrderError::LeaderUnreachable(format!("node {leader} is not in the address book"))
        })
    }

    /// Places an order, here if this replica leads, else through the leader.
    pub async fn place(
        &self,
        order: PlaceOrder,
        forwarded: bool,
    ) -> Result<OrderPlaced, OrderError> {
        validate(&order)?;
        match self.route() {
            Route::Here => self.place_here(order).await,
            Route::Leader(leader) if !forwarded => {
                self.metrics.forwarded.inc();
                let url = format!("{}/orders", self.leader_url(leader)?);
                let request = self
                    .client
                    .post(&url)
                    .header(FORWARDED_BY, self.id)
                    .json(&order);
                self.client
                    .call(request)
                    .await
                    .map_err(OrderError::from_leader)
            }
            _ => Err(OrderError::NoLeader),
        }
    }

    async fn place_here(&self, order: PlaceOrder) -> Result<OrderPlaced, OrderError> {
        // Fast path for a retry whose first attempt committed.
        if let Some(earlier) = self.reader.by_request(&order.request_id)? {
            return self.answer_duplicate(
                &order,
                earlier.number,
                earlier.name == order.name && earlier.quantity == order.quantity,
            );
        }
        let buy = BuyRequest {
            request_id: order.request_id.clone(),
            name: order.name.clone(),
            quantity: order.quantity,
        };
        let bought = self
            .buyer
            .buy(buy)
            .await
            .map_err(OrderError::from_catalog)?;
        match bought {
            BuyOutcome::Bought { .. } => {}
            BuyOutcome::OutOfStock { available } => {
                return Err(OrderError::OutOfStock {
                    name: order.name,
                    available,
                });
            }
            BuyOutcome::UnknownProduct => return Err(OrderError::UnknownProduct(order.name)),
        }
        self.faults.check_crash_after_buy(&order.request_id);
        let proposed = NewOrder {
            request_id: order.request_id.clone(),
            name: order.name.clone(),
            quantity: order.quantity,
        };
        let outcome = self.batcher.propose(proposed).await.inspect_err(|err| {
            self.metrics.write_failures.inc();
            tracing::warn!(request_id = %order.request_id, %err, "order not committed");
        })?;
        match outcome {
            OrderOutcome::Placed(number) => {
                self.metrics.orders_placed.inc();
                tracing::debug!(request_id = %order.request_id, number, "order committed");
                Ok(OrderPlaced {
                    order_number: number,
                })
            }
            OrderOutcome::Duplicate(number) => self.answer_duplicate(&order, number, true),
            OrderOutcome::Conflict(number) => self.answer_duplicate(&order, number, false),
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
        })
    }

    /// Reads an order with linearizable semantics.
    pub async fn lookup(&self, number: u64, forwarded: bool) -> Result<OrderRecord, OrderError> {
        match self.route() {
            Route::Here => {
                match tokio::time::timeout(self.read_timeout, self.raft.ensure_linearizable()).await
                {
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => return Err(OrderError::ReadNotConfirmed(err.to_string())),
                    Err(_) => {
                        return Err(OrderError::ReadNotConfirmed(format!(
                            "no quorum answered within {:?}",
                            self.read_timeout
                        )));
                    }
                }
                let order = self
                    .reader
                    .order(number)?
                    .ok_or(OrderError::NoSuchOrder(number))?;
                Ok(OrderRecord {
                    number: order.number,
                    name: order.name,
                    quantity: order.quantity,
                })
            }
            Route::Leader(leader) if !forwarded => {
                self.metrics.forwarded.inc();
                let url = format!("{}/orders/{number}", self.leader_url(leader)?);
                let request = self.client.get(&url).header(FORWARDED_BY, self.id);
                self.client
                    .call(request)
                    .await
                    .map_err(OrderError::from_leader)
            }
            _ => Err(OrderError::NoLeader),
        }
    }

    pub fn record_selection(&self, leader_id: NodeId) {
        let previous = self.selected_leader.swap(leader_id, Ordering::Relaxed);
        if previous != leader_id {
            tracing::info!(selected = leader_id, "the front-end selected a replica");
        }
    }

    pub fn status(&self) -> NodeStatus {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let summary = self.reader.summary();
        let role = match metrics.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        let selected = self.selected_leader.load(Ordering::Relaxed);
        NodeStatus {
            id: self.id,
            role: role.to_string(),
            term: metrics.current_term,
            leader: metrics.current_leader,
            last_log_index: metrics.last_log_index,
            applied_index: summary.last_applied.map(|id| id.index),
            selected_leader: (selected != 0).then_some(selected),
            orders: summary.next_number,
            digest: hex::encode(summary.digest),
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

/// Mirrors openraft's metrics into the Prometheus gauges until Raft stops.
pub async fn mirror_raft_metrics(raft: Raft, metrics: NodeMetrics) {
    let mut watch = raft.metrics();
    loop {
        {
            let m = watch.borrow_and_update();
            metrics.term.set(m.current_term as i64);
            metrics
                .last_log_index
                .set(m.last_log_index.map_or(-1, |i| i as i64));
            metrics
                .applied_index
                .set(m.last_applied.map_or(-1, |id| id.index as i64));
            metrics
                .is_leader
                .set(i64::from(m.state == ServerState::Leader));
        }
        if watch.changed().await.is_err() {
            break;
        }
    }
}
