//! Orders through the front-end: leader selection, forwarding, exactly-once failover,
//! read-your-writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use api::client::ServiceClient;
use api::frontend::FrontendClient;
use system_tests::store::{StoreOptions, TestStore};
use system_tests::{metric, metrics_text, start_lone_frontend_with, wait_for};

/// Waits until every running replica reports `selected` as the front-end's selection.
async fn all_report_selected(store: &TestStore, selected: u64) {
    wait_for(
        "every replica to know the selection",
        Duration::from_secs(10),
        || async {
            for id in store.running() {
                if store.status(id).await.ok()?.selected_replica != Some(selected) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_go_to_the_highest_live_replica_and_survive_its_crash() {
    orders_survive_the_selected_replica_s_crash().await;
}

/// The same with every service on one thread, as `cluster/up.sh` runs them
/// (`--worker-threads 1`): nothing on a request's path may hold the thread so long that Raft's
/// heartbeats or the front-end's selection starve.
#[tokio::test(flavor = "current_thread")]
async fn on_one_thread_orders_go_to_the_highest_live_replica_and_survive_its_crash() {
    orders_survive_the_selected_replica_s_crash().await;
}

async fn orders_survive_the_selected_replica_s_crash() {
    let mut store = TestStore::start(StoreOptions {
        frontend: true,
        ..Default::default()
    })
    .await;
    let frontend = store.frontend();
    store.leader().await;

    let first = frontend.order("Teddy Bear", 2, None).await.unwrap();
    let record = frontend.lookup(first.order_number).await.unwrap();
    assert_eq!((record.name.as_str(), record.quantity), ("Teddy Bear", 2));
    assert_eq!(store.frontend_status().await.selected_replica, Some(3));
    all_report_selected(&store, 3).await;

    // A missing order is a 404 in the envelope.
    let missing = frontend.lookup(999_999).await;
    assert_eq!(missing.unwrap_err().status().map(|s| s.as_u16()), Some(404));

    // The selected replica crashes: the next order succeeds with no error visible to the client.
    store.stop_node(3).await;
    let after = frontend.order("Teddy Bear", 1, None).await.unwrap();
    assert_eq!(after.order_number, first.order_number + 1);
    let status = store.frontend_status().await;
    assert_eq!(status.selected_replica, Some(2));
    assert!(status.reselections >= 1);
    all_report_selected(&store, 2).await;
    let record = frontend
        .lookup(first.order_number)
        .await
        .expect("orders placed before the crash are still served");
    assert_eq!(record.quantity, 2);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_places_one_order_and_buys_once() {
    let store = TestStore::start(StoreOptions {
        frontend: true,
        ..Default::default()
    })
    .await;
    let frontend = store.frontend();
    let before = store.product("Hot Wheels").await.quantity;
    let first = frontend
        .order("Hot Wheels", 3, Some("client-key-1"))
        .await
        .unwrap();
    let again = frontend
        .order("Hot Wheels", 3, Some("client-key-1"))
        .await
        .unwrap();
    // A retry gets the same number; its stock version may be absent (the replicas answer
    // a repeated key from memory, and only the placing reservation knew the version).
    assert_eq!(first.order_number, again.order_number);
    assert_eq!(store.product("Hot Wheels").await.quantity, before - 3);
    // Without a key, two identical requests are two orders.
    let a = frontend.order("Hot Wheels", 1, None).await.unwrap();
    let b = frontend.order("Hot Wheels", 1, None).await.unwrap();
    assert_ne!(a, b);
    assert_eq!(store.product("Hot Wheels").await.quantity, before - 5);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_orders_buy_nothing() {
    let store = TestStore::start(StoreOptions {
        frontend: true,
        initial_stock: 5,
        ..Default::default()
    })
    .await;
    let frontend = store.frontend();
    let unknown = frontend.order("Flux Capacitor", 1, None).await.unwrap_err();
    assert_eq!(unknown.status().map(|s| s.as_u16()), Some(404));
    let too_many = frontend.order("Jump Rope", 6, None).await.unwrap_err();
    assert_eq!(too_many.status().map(|s| s.as_u16()), Some(400));
    assert!(too_many.is_out_of_stock(), "{too_many}");
    assert_eq!(store.product("Jump Rope").await.quantity, 5);
    // No order was created by either.
    let first = frontend.order("Jump Rope", 5, None).await.unwrap();
    assert_eq!(first.order_number, 0);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_order_is_acknowledged_the_front_end_never_shows_the_old_quantity() {
    let store = TestStore::start(StoreOptions {
        frontend: true,
        initial_stock: 1_000,
        ..Default::default()
    })
    .await;
    let frontend = store.frontend();
    store.wait_for_cache_lease().await;
    // Readers hammer the same toy so that cache fills race every invalidation.
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (frontend, stop) = (frontend.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    frontend
                        .product("Play-Doh")
                        .await
                        .expect("the toy is readable");
                }
            })
        })
        .collect();
    let mut expected = frontend.product("Play-Doh").await.unwrap().quantity;
    for i in 0..40 {
        let q = 1 + i % 3;
        frontend.order("Play-Doh", q, None).await.unwrap();
        expected -= q;
        assert_eq!(
            frontend.product("Play-Doh").await.unwrap().quantity,
            expected,
            "read right after order {i} was acknowledged"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }
    assert!(
        store.frontend_status().await.cache.hits > 0,
        "the cache was in use throughout"
    );
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_issued_after_an_order_is_acknowledged_finds_it_anywhere() {
    let store = TestStore::start(StoreOptions {
        frontend: true,
        ..Default::default()
    })
    .await;
    let frontend = store.frontend();
    for i in 0..30u32 {
        let quantity = 1 + i % 3;
        // Every third order skips the front-end, so its cache cannot know it.
        let number = if i % 3 == 0 {
            let leader = store.leader().await;
            store
                .place(leader, &format!("direct-{i}"), "Marbles", quantity)
                .await
                .unwrap()
                .order_number
        } else {
            frontend
                .order("Marbles", quantity, None)
                .await
                .unwrap()
                .order_number
        };
        let expected = api::order::OrderRecord {
            number,
            name: "Marbles".into(),
            quantity,
        };
        // Right after the acknowledgement: through the front-end, and on every replica, which
        // answers from what it has applied or else through the leader's read index.
        assert_eq!(frontend.lookup(number).await.unwrap(), expected);
        for id in 1..=3 {
            assert_eq!(
                store.lookup(id, number).await.unwrap(),
                expected,
                "replica {id}, order {number}"
            );
        }
    }
    let status = store.frontend_status().await;
    assert!(status.selected_replica.is_some());
    store.shutdown().await;
}

/// SIGTERM while an order is still being retried: the front-end answers it at once with a 503
/// the client can retry elsewhere, and stops. It used to go on retrying for the whole order
/// budget (and, with its batching tasks already stopped, without pausing between attempts), so
/// a graceful stop took as long as the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_front_end_answers_the_orders_it_is_retrying_and_stops() {
    let dir = tempfile::TempDir::new().expect("a temporary directory");
    let catalog = catalog::serve(catalog::Config::for_test(dir.path().join("catalog")))
        .await
        .expect("catalog starts");
    let catalog_url = api::url::parse_base_url(&catalog.url()).expect("a catalog URL");
    // Its one replica address leads nowhere: every attempt fails, and the order is retried.
    let budget = Duration::from_secs(600);
    let (server, frontend) = start_lone_frontend_with(&catalog_url, |config| {
        config.order_retry = budget;
        // A request may take as long as its order is retried (the configuration insists on it).
        config.serve.request_timeout = budget + Duration::from_secs(60);
    })
    .await;
    // A client as patient as the budget: one that gave up would end the request itself.
    let base = frontend.base().clone();
    let client = FrontendClient::new(base.clone(), ServiceClient::new(budget, None));
    let order = tokio::spawn(async move { client.order("Tux", 1, Some("stopping")).await });
    wait_for(
        "the order to be retried",
        Duration::from_secs(10),
        || async {
            let retries = metric(&metrics_text(&base).await, "frontend_order_retries_total")?;
            (retries >= 1).then_some(())
        },
    )
    .await;

    tokio::time::timeout(Duration::from_secs(60), server.shutdown())
        .await
        .expect("the front-end stops without spending the order's retry budget")
        .expect("a clean stop");
    let answer = order
        .await
        .expect("the order task")
        .expect_err("no replica was ever reachable");
    assert_eq!(
        answer.status().map(|status| status.as_u16()),
        Some(503),
        "a stopping front-end answers 503, which the client may retry elsewhere: {answer}"
    );
    let _ = catalog.shutdown().await;
}
