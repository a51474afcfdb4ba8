//! The front-end's own Prometheus series (`frontend_*`), registered in one place.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The product cache's counters.
#[derive(Clone, Default)]
pub struct CacheMetrics {
    pub hits: Counter,
    pub misses: Counter,
    pub evictions: Counter,
    pub invalidations: Counter,
}

/// The order cache's counters.
#[derive(Clone, Default)]
pub struct OrderCacheMetrics {
    pub hits: Counter,
    pub misses: Counter,
}

/// The replica selection's figures.
#[derive(Clone, Default)]
pub struct SelectorMetrics {
    /// Selections made after the first one.
    pub reselections: Counter,
    /// Id of the selected replica (0: none).
    pub selected: Gauge,
}

/// Every series the front-end keeps. Clones share the same series.
#[derive(Clone)]
pub struct FrontendMetrics {
    pub cache: CacheMetrics,
    pub order_cache: OrderCacheMetrics,
    pub selector: SelectorMetrics,
    /// Forwarded order requests sent again.
    pub order_retries: Counter,
    /// Orders per `POST /orders/batch`.
    pub order_batch_size: Histogram,
}

impl Default for FrontendMetrics {
    fn default() -> Self {
        Self {
            cache: CacheMetrics::default(),
            order_cache: OrderCacheMetrics::default(),
            selector: SelectorMetrics::default(),
            order_retries: Counter::default(),
            order_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
        }
    }
}

impl FrontendMetrics {
    /// Creates the series and registers them (the registry adds the `frontend_` prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let m = metrics.clone();
        registry.register(
            "cache_hits",
            "Product queries served from the cache",
            m.cache.hits,
        );
        registry.register(
            "cache_misses",
            "Product queries sent to the catalog",
            m.cache.misses,
        );
        registry.register(
            "cache_evictions",
            "Entries evicted by the LRU policy",
            m.cache.evictions,
        );
        registry.register(
            "cache_invalidations",
            "Cached entries removed by a catalog invalidation",
            m.cache.invalidations,
        );
        registry.register(
            "order_cache_hits",
            "Order queries answered from the front-end's cache of committed orders",
            m.order_cache.hits,
        );
        registry.register(
            "order_cache_misses",
            "Order queries sent to a replica",
            m.order_cache.misses,
        );
        registry.register(
            "leader_reselections",
            "Order replica selections after the first",
            m.selector.reselections,
        );
        registry.register(
            "selected_replica",
            "Id of the selected order replica (0: none)",
            m.selector.selected,
        );
        registry.register(
            "order_retries",
            "Forwarded order requests sent again",
            m.order_retries,
        );
        registry.register(
            "order_batch_size",
            "Orders per POST /orders/batch to a replica",
            m.order_batch_size,
        );
        metrics
    }
}
