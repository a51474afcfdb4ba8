//! Retention across both sides (CONTRACT.md §5): the replicas forget a request id R after its
//! order, the catalog later. A key reused in between must never place an order that took no
//! stock (issue 20, finding 4: the catalog used to answer the duplicate of a *confirmed*
//! reservation with its stored "reserved", and the replicas, having forgotten the key, placed a
//! second order on one reservation).

use std::time::Duration;

use system_tests::store::{StoreOptions, TestStore};
use system_tests::wait_for;

/// Short enough for a test; 4 × the reservation timeout, as the replicas require.
const RETENTION: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_reused_after_the_replicas_forgot_it_never_buys_without_stock() {
    let store = TestStore::start(StoreOptions {
        tune_node: |config| {
            config.retention.dedup_retention = RETENTION;
            config.reservation_timeout = RETENTION / 4;
        },
        tune_catalog: |config| config.retention.dedup_retention = RETENTION,
        ..StoreOptions::default()
    })
    .await;
    let leader = store.leader().await;
    let first = store
        .place(leader, "reused-key", "Tux", 1)
        .await
        .expect("the first order");
    // The leader confirms the reservation in the background; wait until it has.
    wait_for(
        "the reservation to be confirmed",
        Duration::from_secs(10),
        || async {
            let stock = store.catalog.stock().await.ok()?;
            let tux = stock.into_iter().find(|toy| toy.name == "Tux")?;
            (tux.pending == 0).then_some(())
        },
    )
    .await;
    // The replicas' clock moves only with log entries: let the retention pass, then move it.
    tokio::time::sleep(RETENTION + Duration::from_millis(500)).await;
    store
        .place(leader, "moves-the-clock", "Lego", 1)
        .await
        .expect("an order that moves the log's clock");

    let again = store.place(leader, "reused-key", "Tux", 1).await;
    let refused = again.expect_err("a key the replicas forgot, still known to the catalog");
    assert_eq!(
        refused.status_code(),
        409,
        "refused as a request id used too long ago: {refused}"
    );

    // Nothing was sold for the refused order: one Tux order, one Tux unit gone.
    let orders = store
        .replica(leader)
        .all_local_orders()
        .await
        .expect("the leader's orders");
    let tux_orders = orders.iter().filter(|o| o.name == "Tux").count();
    assert_eq!(
        tux_orders, 1,
        "orders: {orders:?} (first was #{})",
        first.order_number
    );
    let tux = store
        .catalog
        .stock()
        .await
        .expect("the catalog's accounts")
        .into_iter()
        .find(|toy| toy.name == "Tux")
        .expect("Tux");
    assert_eq!(
        u64::from(tux.quantity) + tux.pending,
        tux.initial + tux.restocked - 1
    );
    store.shutdown().await;
}
