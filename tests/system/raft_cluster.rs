//! Three real order replicas (real HTTP, real RocksDB): election, ordering, dedup, crash and
//! catch-up.

use std::collections::BTreeSet;
use std::time::Duration;

use api::order::routes;
use api::url::route_url;
use futures::future::join_all;
use system_tests::store::{StoreOptions, TestStore};
use system_tests::wait_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_is_elected_and_every_replica_knows_it() {
    let store = TestStore::start(StoreOptions::default()).await;
    let leader = store.leader().await;
    for id in 1..=3 {
        let status = store.status(id).await.unwrap();
        assert_eq!(status.leader, Some(leader));
        assert!(status.term >= 1);
        assert_eq!(
            status.role,
            if id == leader { "leader" } else { "follower" }
        );
    }
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_orders_get_dense_unique_numbers() {
    let store = TestStore::start(StoreOptions::default()).await;
    store.leader().await;
    // Sent to every replica in turn: followers forward to the leader.
    let orders = (0..200u32).map(|i| {
        let store = &store;
        async move {
            let via = u64::from(i % 3) + 1;
            let placed = store
                .place(via, &format!("dense-{i}"), "Marbles", 1 + i % 3)
                .await;
            (i, placed.expect("order placed").order_number)
        }
    });
    let placed = join_all(orders).await;
    let numbers: BTreeSet<u64> = placed.iter().map(|(_, n)| *n).collect();
    assert_eq!(
        numbers,
        (0..200).collect::<BTreeSet<u64>>(),
        "unique and dense from 0"
    );
    for (i, number) in placed {
        let order = store.lookup(u64::from(i % 3) + 1, number).await.unwrap();
        assert_eq!(
            (order.number, order.name.as_str(), order.quantity),
            (number, "Marbles", 1 + i % 3)
        );
    }
    let (_, _, count) = store.converged().await;
    assert_eq!(count, 200);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_request_id_gets_the_same_number_and_buys_once() {
    let store = TestStore::start(StoreOptions::default()).await;
    let leader = store.leader().await;
    let before = store.product("Frisbee").await.quantity;
    let first = store.place(leader, "same-id", "Frisbee", 2).await.unwrap();
    let again = store
        .place(1 + leader % 3, "same-id", "Frisbee", 2)
        .await
        .unwrap();
    // A retry is answered from the replicas' memory of the key: the same number, without
    // the stock version (only the reservation that placed the order knows it).
    assert_eq!(first.order_number, again.order_number);
    assert_eq!(again.stock_version, None);
    // And ten concurrent copies of a new id: one order.
    let copies = join_all((0..10).map(|i| store.place(1 + i % 3, "racing-id", "Frisbee", 1))).await;
    let numbers: BTreeSet<u64> = copies
        .into_iter()
        .map(|c| c.unwrap().order_number)
        .collect();
    assert_eq!(numbers.len(), 1);
    assert_eq!(
        store.product("Frisbee").await.quantity,
        before - 3,
        "two buys in all"
    );
    // The same id for a different order is refused, and buys nothing.
    let reused = store
        .place(leader, "same-id", "Frisbee", 5)
        .await
        .unwrap_err();
    assert_eq!(reused.status().map(|s| s.as_u16()), Some(409));
    assert_eq!(store.product("Frisbee").await.quantity, before - 3);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_survive_the_leader_crash_and_a_new_leader_takes_over() {
    let mut store = TestStore::start(StoreOptions::default()).await;
    let old = store.leader().await;
    let mut committed = Vec::new();
    for i in 0..30 {
        let placed = store
            .place(old, &format!("before-{i}"), "Lego", 1)
            .await
            .unwrap();
        committed.push(placed.order_number);
    }
    store.stop_node(old).await;
    let survivors: Vec<u64> = (1..=3).filter(|id| *id != old).collect();
    let new = store.leader_among(&survivors).await;
    assert_ne!(new, old);
    for number in &committed {
        let order = store
            .lookup(new, *number)
            .await
            .expect("a committed order survives");
        assert_eq!(order.name, "Lego");
    }
    let after = store
        .place(survivors[0], "after-crash", "Lego", 1)
        .await
        .unwrap();
    assert_eq!(after.order_number, 30, "numbering continues densely");
    store.restart_node(old).await;
    let (_, _, orders) = store.converged().await;
    assert_eq!(orders, 31);
    store.shutdown().await;
}

/// Where a restarted replica finds what it missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CatchUp {
    /// The leader still has the entries.
    Log,
    /// The leader has purged them into a snapshot.
    Snapshot,
}

/// Stops a follower, commits 500 orders, restarts it on its old data and waits until it has
/// the same orders as the others; the leader keeps leading in the same term throughout (the
/// restarted replica does not campaign before the leader reaches it). Returns the restarted
/// replica's status.
async fn catch_up(options: StoreOptions, from: CatchUp) -> api::status::NodeStatus {
    let mut store = TestStore::start(options).await;
    let leader = store.leader().await;
    let lagging = 1 + leader % 3;
    store.place(leader, "warm-up", "Kite", 1).await.unwrap();
    store.converged().await;
    let term = store.status(leader).await.unwrap().term;
    let behind = store.status(lagging).await.unwrap().last_log_index;
    store.stop_node(lagging).await;
    for round in 0..10 {
        let store = &store;
        let orders = (0..50).map(|i| async move {
            store
                .place(leader, &format!("missed-{round}-{i}"), "Kite", 1)
                .await
        });
        for placed in join_all(orders).await {
            placed.expect("the majority commits without the stopped replica");
        }
    }
    if from == CatchUp::Snapshot {
        // openraft 0.10 purges no entry a replication to the stopped replica still has in
        // flight; it lets go of them when a retry fails, so the purge comes a backoff after
        // the snapshot. Restarting before it would catch up from the log.
        wait_for(
            "the leader to purge the entries the stopped replica misses",
            Duration::from_secs(30),
            || async {
                let status = store.status(leader).await.ok()?;
                (status.purged_index > behind).then_some(())
            },
        )
        .await;
    }
    store.restart_node(lagging).await;
    let (_, digest, orders) = store.converged().await;
    assert_eq!(orders, 501);
    let status = store.status(lagging).await.unwrap();
    assert_eq!(status.digest, digest);
    assert_eq!(
        (status.leader, status.term),
        (Some(leader), term),
        "the restarted replica follows the leader it found, in the same term"
    );
    store.shutdown().await;
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_replica_catches_up_from_the_log() {
    let status = catch_up(StoreOptions::default(), CatchUp::Log).await;
    assert!(
        status.entries_received > 0,
        "it fetched the entries it missed"
    );
    assert_eq!(status.snapshots_installed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_behind_a_purged_log_catches_up_from_a_snapshot() {
    let status = catch_up(
        StoreOptions {
            tune_node: |config| {
                config.snapshot_every = 20;
                config.keep_logs = 0;
                // One entry per order: the 500 missed orders are 500 entries, far past the
                // snapshot threshold, however the orders would have been batched.
                config.batch.batch_max = 1;
            },
            ..Default::default()
        },
        CatchUp::Snapshot,
    )
    .await;
    assert!(
        status.snapshots_installed >= 1,
        "the leader had purged what it missed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_endpoints_require_the_cluster_token() {
    let store = TestStore::start(StoreOptions {
        cluster_token: Some("s3cret".into()),
        ..Default::default()
    })
    .await;
    let leader = store.leader().await;
    let placed = store.place(leader, "with-token", "Tux", 1).await.unwrap();
    let raw = reqwest::Client::new();
    let node = store.node_url(leader);
    let at = |base: &reqwest::Url, route: &str, params: &[&str]| route_url(base, route, params);
    let number = placed.order_number.to_string();
    let forbidden = [
        raw.post(at(&node, routes::RAFT_VOTE, &[]))
            .body(vec![0u8; 4]),
        raw.post(at(&node, routes::RAFT_PRE_VOTE, &[]))
            .body(vec![0u8; 4]),
        raw.post(at(&node, routes::ORDERS, &[]))
            .json(&serde_json::json!({"request_id": "x", "name": "Tux", "quantity": 1})),
        raw.get(at(&node, routes::ORDER, &[&number])),
        raw.post(at(&node, routes::SELECTION, &[]))
            .header("x-cluster-token", "wrong")
            .json(&serde_json::json!({"replica_id": 1})),
        raw.post(at(
            &store.catalog_url,
            api::catalog::routes::RESERVATIONS,
            &[],
        ))
        .json(&serde_json::json!({"reservations": [
            {"id": {"request_id": "x", "attempt": 0}, "name": "Tux", "quantity": 1}
        ]})),
    ];
    for request in forbidden {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], 401);
    }
    // Public endpoints stay open.
    assert!(
        raw.get(at(&node, routes::STATUS, &[]))
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    assert_eq!(
        store.product("Tux").await.quantity,
        99_999,
        "only the authorized order bought"
    );
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_adds_up_after_orders_without_keys_meet_a_lost_quorum() {
    let mut store = TestStore::start(StoreOptions {
        initial_stock: 1_000,
        tune_node: |config| config.reservation_timeout = Duration::from_secs(2),
        ..Default::default()
    })
    .await;
    let leader = store.leader().await;
    let followers: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    store.place(leader, "before", "Monopoly", 2).await.unwrap();
    for &id in &followers {
        store.stop_node(id).await;
    }
    // Sent at once, inside the leader's lease: some reserve stock that can never commit now.
    let orders = (0..10).map(|i| {
        let store = &store;
        async move {
            store
                .place(leader, &uuid_like(i), "Monopoly", 1 + i % 3)
                .await
        }
    });
    for answer in join_all(orders).await {
        let err = answer.expect_err("no order commits without a quorum");
        assert_eq!(err.status().map(|s| s.as_u16()), Some(503), "{err}");
    }
    for &id in &followers {
        store.restart_node(id).await;
    }
    // Nobody retries. The leader settles what was left pending through the log.
    let settled = wait_for(
        "every reservation to be settled",
        Duration::from_secs(60),
        || async {
            let stock = store.catalog.stock().await.ok()?;
            let toy = stock.into_iter().find(|t| t.name == "Monopoly")?;
            (toy.pending == 0).then_some(toy)
        },
    )
    .await;
    let (_, _, count) = store.converged().await;
    let leader = store.leader().await;
    let mut committed = 0u64;
    for number in 0..count {
        let order = store.lookup(leader, number).await.unwrap();
        if order.name == "Monopoly" {
            committed += u64::from(order.quantity);
        }
    }
    assert_eq!(
        settled.initial + settled.restocked - committed,
        u64::from(settled.quantity),
        "initial + restocked - committed == current: {settled:?}, committed {committed}"
    );
    store.shutdown().await;
}

/// A request id as a front-end makes one for an order without an Idempotency-Key.
fn uuid_like(i: u32) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}
