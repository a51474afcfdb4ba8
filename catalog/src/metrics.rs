//! The catalog's own Prometheus series (`catalog_*`), registered in one place.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Every counter the catalog keeps. Clones share the same series.
#[derive(Clone)]
pub struct CatalogMetrics {
    pub reservations: Counter,
    pub units_sold: Counter,
    pub units_released: Counter,
    pub out_of_stock: Counter,
    pub duplicate_reservations: Counter,
    pub restocked_toys: Counter,
    pub commits: Counter,
    pub commit_batch_size: Histogram,
    pub invalidations_pushed: Counter,
    pub leases_revoked: Counter,
    pub releases_refused: Counter,
    pub reservations_forgotten: Counter,
    pub reservation_records: Gauge,
    pub pending_reservations: Gauge,
    pub restart_frontends_reset: Gauge,
    pub restart_frontends_waited: Gauge,
}

impl Default for CatalogMetrics {
    fn default() -> Self {
        Self {
            reservations: Counter::default(),
            units_sold: Counter::default(),
            units_released: Counter::default(),
            out_of_stock: Counter::default(),
            duplicate_reservations: Counter::default(),
            restocked_toys: Counter::default(),
            commits: Counter::default(),
            commit_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            invalidations_pushed: Counter::default(),
            leases_revoked: Counter::default(),
            releases_refused: Counter::default(),
            reservations_forgotten: Counter::default(),
            reservation_records: Gauge::default(),
            pending_reservations: Gauge::default(),
            restart_frontends_reset: Gauge::default(),
            restart_frontends_waited: Gauge::default(),
        }
    }
}

impl CatalogMetrics {
    /// Creates the series and registers them (the registry adds the `catalog_` prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let m = metrics.clone();
        registry.register(
            "reservations",
            "Reservations that took stock",
            m.reservations,
        );
        registry.register(
            "units_sold",
            "Units whose reservation was confirmed (their order committed)",
            m.units_sold,
        );
        registry.register(
            "units_released",
            "Units whose reservation was released (their order was abandoned)",
            m.units_released,
        );
        registry.register(
            "out_of_stock",
            "Reservations refused for lack of stock",
            m.out_of_stock,
        );
        registry.register(
            "duplicate_reservations",
            "Reservations answered from an earlier one with the same id",
            m.duplicate_reservations,
        );
        registry.register(
            "restocked_toys",
            "Toys refilled by the restock loop",
            m.restocked_toys,
        );
        registry.register(
            "commits",
            "Synced RocksDB commits of stock changes",
            m.commits,
        );
        registry.register(
            "commit_batch_size",
            "Commands folded into one commit",
            m.commit_batch_size,
        );
        registry.register(
            "invalidations_pushed",
            "Invalidations delivered to front-ends",
            m.invalidations_pushed,
        );
        registry.register(
            "leases_revoked",
            "Front-end leases revoked after a failed push",
            m.leases_revoked,
        );
        registry.register(
            "releases_refused",
            "Releases refused because the reservation was older than the decision horizon \
             (half the dedup retention): its units stay held",
            m.releases_refused,
        );
        registry.register(
            "reservations_forgotten",
            "Finished reservation records forgotten past the dedup retention and the horizon",
            m.reservations_forgotten,
        );
        registry.register(
            "reservation_records",
            "Reservation records kept (RocksDB's estimate, refreshed every second)",
            m.reservation_records,
        );
        registry.register(
            "pending_reservations",
            "Reservations neither confirmed nor released (refreshed every second)",
            m.pending_reservations,
        );
        registry.register(
            "restart_frontends_reset",
            "Known front-ends this run told to start fresh before its first change",
            m.restart_frontends_reset,
        );
        registry.register(
            "restart_frontends_waited",
            "Known front-ends this run could not reach at start, whose lease it waited out \
             before its first change",
            m.restart_frontends_waited,
        );
        metrics
    }
}
