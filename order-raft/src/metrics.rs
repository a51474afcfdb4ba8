//! A replica's own Prometheus series (`order_*`), registered in one place, and the task that
//! mirrors openraft's metrics into them.

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::OrderReader;
use crate::types::Raft;

/// Counters and gauges of one replica.
#[derive(Clone)]
pub struct NodeMetrics {
    pub orders_placed: Counter,
    pub orders_deduplicated: Counter,
    pub forwarded: Counter,
    pub entries_received: Counter,
    /// On a follower, the time between two accepted messages of its leader: heartbeats come
    /// every `--heartbeat-ms`, so a longer gap means the leader (its one thread, its network)
    /// stalled; at a lease the follower would stop trusting it.
    pub leader_silence_seconds: Histogram,
    pub write_failures: Counter,
    pub batch_size: Histogram,
    pub reserve_batch_size: Histogram,
    pub settle_batch_size: Histogram,
    pub reservations_released: Counter,
    pub reservations_confirmed_late: Counter,
    pub read_index_batch_size: Histogram,
    /// Seconds from an order's arrival on the leader to its reservation's answer.
    pub reserve_seconds: Histogram,
    /// Seconds from an order's proposal to the state machine's outcome.
    pub commit_seconds: Histogram,
    pub term: Gauge,
    pub last_log_index: Gauge,
    pub applied_index: Gauge,
    pub is_leader: Gauge,
    /// Request ids this replica still stores (an upper bound: orders not yet forgotten, each
    /// with at most one index entry), and abandonment records it still stores.
    pub requests_stored: Gauge,
    pub abandons_stored: Gauge,
}

impl NodeMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            orders_placed: Counter::default(),
            orders_deduplicated: Counter::default(),
            forwarded: Counter::default(),
            entries_received: Counter::default(),
            leader_silence_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 12)),
            write_failures: Counter::default(),
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            reserve_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            settle_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            reservations_released: Counter::default(),
            reservations_confirmed_late: Counter::default(),
            read_index_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            reserve_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            commit_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            term: Gauge::default(),
            last_log_index: Gauge::default(),
            applied_index: Gauge::default(),
            is_leader: Gauge::default(),
            requests_stored: Gauge::default(),
            abandons_stored: Gauge::default(),
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
            "reserve_batch_size",
            "Catalog reservations per POST /reservations call",
            metrics.reserve_batch_size.clone(),
        );
        registry.register(
            "leader_silence_seconds",
            "On a follower, the time between two accepted messages of its leader",
            metrics.leader_silence_seconds.clone(),
        );
        registry.register(
            "settle_batch_size",
            "Settlements per POST /settlements call",
            metrics.settle_batch_size.clone(),
        );
        registry.register(
            "reservations_released",
            "Reservations left pending that the log abandoned (stock returned)",
            metrics.reservations_released.clone(),
        );
        registry.register(
            "reservations_confirmed_late",
            "Reservations left pending whose order had committed",
            metrics.reservations_confirmed_late.clone(),
        );
        registry.register(
            "read_index_batch_size",
            "Callers served by one leadership confirmation",
            metrics.read_index_batch_size.clone(),
        );
        registry.register(
            "reserve_seconds",
            "Time from an order's arrival on the leader to its reservation's answer",
            metrics.reserve_seconds.clone(),
        );
        registry.register(
            "commit_seconds",
            "Time from an order's proposal to the state machine's outcome",
            metrics.commit_seconds.clone(),
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
        registry.register(
            "requests_stored",
            "Request ids this replica still stores (at most one per order not yet forgotten)",
            metrics.requests_stored.clone(),
        );
        registry.register(
            "abandons_stored",
            "Abandonment records this replica still stores",
            metrics.abandons_stored.clone(),
        );
        metrics
    }
}

/// Mirrors openraft's metrics, and what the state machine stores, into the Prometheus gauges
/// until Raft stops (every applied entry changes openraft's metrics).
pub async fn mirror_raft_metrics(raft: Raft, reader: OrderReader, metrics: NodeMetrics) {
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
        let summary = reader.summary();
        let stored = |total: u64, forgotten: u64| total.saturating_sub(forgotten) as i64;
        metrics.requests_stored.set(stored(
            summary.counters.next_number,
            summary.requests_forgotten_below,
        ));
        metrics.abandons_stored.set(stored(
            summary.counters.abandon_seq,
            summary.abandons_forgotten_below,
        ));
        if watch.changed().await.is_err() {
            break;
        }
    }
}
