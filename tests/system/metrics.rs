//! `/metrics` on every service carries the series the README promises.

use system_tests::metrics_text;
use system_tests::store::{StoreOptions, TestStore};

/// The service-specific series of README's "Observability" paragraph, per service.
const FRONTEND: &[&str] = &[
    "frontend_cache_hits",
    "frontend_cache_misses",
    "frontend_cache_evictions",
    "frontend_cache_invalidations",
    "frontend_order_cache_hits",
    "frontend_order_cache_misses",
    "frontend_leader_reselections",
    "frontend_selected_replica",
    "frontend_order_retries",
    "frontend_order_batch_size",
];
const CATALOG: &[&str] = &[
    "catalog_reservations",
    "catalog_units_sold",
    "catalog_units_released",
    "catalog_out_of_stock",
    "catalog_duplicate_reservations",
    "catalog_restocked_toys",
    "catalog_commits",
    "catalog_commit_batch_size",
    "catalog_invalidations_pushed",
    "catalog_leases_revoked",
];
const ORDER: &[&str] = &[
    "order_orders_placed",
    "order_orders_deduplicated",
    "order_forwarded",
    "order_entries_received",
    "order_write_failures",
    "order_batch_size",
    "order_reserve_batch_size",
    "order_settle_batch_size",
    "order_read_index_batch_size",
    "order_reserve_seconds",
    "order_commit_seconds",
    "order_reservations_released",
    "order_reservations_confirmed_late",
    "order_raft_term",
    "order_raft_last_log_index",
    "order_raft_applied_index",
    "order_raft_is_leader",
];

/// The series of `expected` that `/metrics` at `base` does not declare (Prometheus text has a
/// `# TYPE <name> ` line per series).
async fn missing(base: &reqwest::Url, expected: &[&'static str]) -> Vec<&'static str> {
    let text = metrics_text(base).await;
    expected
        .iter()
        .copied()
        .filter(|name| !text.contains(&format!("# TYPE {name} ")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_exports_the_series_the_readme_lists() {
    let store = TestStore::start(StoreOptions {
        frontend: true,
        ..Default::default()
    })
    .await;
    let leader = store.leader().await;
    let none: Vec<&str> = Vec::new();
    assert_eq!(missing(&store.frontend_url(), FRONTEND).await, none);
    assert_eq!(missing(&store.catalog_url, CATALOG).await, none);
    assert_eq!(missing(&store.node_url(leader), ORDER).await, none);
    store.shutdown().await;
}
