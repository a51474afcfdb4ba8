//! Selection that follows Raft: a replica's `/health` says whether it can serve, the front-end
//! passes over replicas that cannot, and Raft leadership follows the front-end's selection.

use std::time::Duration;

use api::order::Selection;
use futures::future::join_all;
use system_tests::proxy::ProxyMesh;
use system_tests::store::{StoreOptions, TestStore, replica_ports};
use system_tests::wait_for;

/// Waits until replica `id` reports `health`.
async fn wait_health(store: &TestStore, id: u64, health: &str) {
    wait_for(
        &format!("replica {id} to report {health:?}"),
        Duration::from_secs(20),
        || async { (store.status(id).await.ok()?.health == health).then_some(()) },
    )
    .await;
}

/// Waits until the front-end's selected replica is the Raft leader; returns it.
async fn selected_leads(store: &TestStore) -> u64 {
    wait_for(
        "the selected replica to lead",
        Duration::from_secs(20),
        || async {
            let selected = store.frontend_status().await.selected_replica?;
            (store.status(selected).await.ok()?.role == "leader").then_some(selected)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_lost_under_the_selected_leader_sells_nothing_and_keys_land_once_after() {
    let mut store = TestStore::start(StoreOptions {
        frontend: true,
        tune_frontend: |config| config.order_retry = Duration::from_secs(2),
        ..Default::default()
    })
    .await;
    let frontend = store.frontend();
    let leader = selected_leads(&store).await;
    frontend.order("Kite", 1, Some("warm-up")).await.unwrap();
    let stock = store.product("Kite").await.quantity;

    let others: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    for &id in &others {
        store.stop_node(id).await;
    }
    wait_health(&store, leader, "no quorum").await;

    let keys: Vec<String> = (0..5).map(|i| format!("no-quorum-{i}")).collect();
    let refused = join_all(keys.iter().map(|key| frontend.order("Kite", 1, Some(key)))).await;
    for answer in refused {
        let err = answer.expect_err("no order without a quorum");
        assert_eq!(err.status().map(|s| s.as_u16()), Some(503), "{err}");
    }
    assert_eq!(
        store.product("Kite").await.quantity,
        stock,
        "a leader without a quorum sells nothing"
    );

    for &id in &others {
        store.restart_node(id).await;
    }
    store.leader().await;
    let mut numbers = Vec::new();
    for key in &keys {
        // Twice each: the retry lands on the same order.
        let first = frontend.order("Kite", 1, Some(key)).await.unwrap();
        let again = frontend.order("Kite", 1, Some(key)).await.unwrap();
        // A retry gets the same number; its stock version may be absent (the replicas answer
        // a repeated key from memory, and only the placing reservation knew the version).
        assert_eq!(first.order_number, again.order_number);
        numbers.push(first.order_number);
    }
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), keys.len(), "one order per key");
    assert_eq!(store.product("Kite").await.quantity, stock - 5);
    let (_, _, orders) = store.converged().await;
    assert_eq!(orders, 1 + keys.len() as u64);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_end_moves_to_the_majority_when_its_replica_is_cut_off() {
    let ports = replica_ports();
    let mesh = ProxyMesh::start(&ports).await;
    let store = TestStore::start_on(
        ports,
        StoreOptions {
            frontend: true,
            address_books: Some(mesh.address_books()),
            // Test replicas have second-long election timeouts: give orders time to wait out
            // the cut-off leader's lease, the front-end's patience and the election.
            tune_frontend: |config| config.order_retry = Duration::from_secs(15),
            ..Default::default()
        },
    )
    .await;
    let frontend = store.frontend();
    let cut_off = selected_leads(&store).await;
    frontend.order("Lego", 1, None).await.unwrap();
    mesh.isolate(cut_off);

    // Orders keep succeeding through the partition: the front-end gives up on the cut-off
    // replica once it has not been able to serve for an election timeout, and selects one of
    // the majority (whose /health answers).
    for i in 0..5 {
        frontend
            .order("Lego", 1, Some(&format!("during-partition-{i}")))
            .await
            .expect("an order during the partition succeeds");
    }
    let status = store.frontend_status().await;
    let moved_to = status.selected_replica.expect("a selected replica");
    assert_ne!(moved_to, cut_off);
    assert!(status.reselections >= 1);
    let health = store.status(cut_off).await.unwrap().health;
    assert_ne!(
        health, "ok",
        "the cut-off replica does not claim it can serve"
    );

    mesh.heal();
    let (_, _, orders) = store.converged().await;
    assert_eq!(orders, 6);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_raft_core_stopped_fails_its_health_check() {
    let store = TestStore::start(StoreOptions {
        fault_injection: true,
        ..Default::default()
    })
    .await;
    let leader = store.leader().await;
    let follower = 1 + leader % 3;
    wait_health(&store, follower, "ok").await;
    store
        .replica(follower)
        .arm_fault(&serde_json::json!({"stop_raft": true}))
        .await
        .unwrap();
    let health = store.replica(follower).health().await.unwrap_err();
    assert_eq!(health.status().map(|s| s.as_u16()), Some(503));
    // Why is on the status page (a 503's body carries only a plain sentence and the request id).
    assert_eq!(store.status(follower).await.unwrap().health, "raft stopped");
    // The other two still serve.
    wait_health(&store, leader, "ok").await;
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moves_to_the_selection_and_stays_there_under_load() {
    let store = TestStore::start(StoreOptions::default()).await;
    let leader = store.leader().await;
    let chosen = 1 + leader % 3;
    for id in 1..=3 {
        store
            .replica(id)
            .announce_selection(&Selection { replica_id: chosen })
            .await
            .unwrap();
    }
    let moved = wait_for(
        "the selected replica to take over",
        Duration::from_secs(20),
        || async {
            let status = store.status(chosen).await.ok()?;
            (status.role == "leader" && status.health == "ok").then_some(status.term)
        },
    )
    .await;
    let forwarded_before = store.forwarded(chosen).await;
    let orders = (0..100).map(|i| {
        let store = &store;
        async move {
            store
                .place(chosen, &format!("load-{i}"), "Frisbee", 1)
                .await
        }
    });
    for placed in join_all(orders).await {
        placed.expect("an order on the new leader");
    }
    let status = store.status(chosen).await.unwrap();
    assert_eq!(
        status.role, "leader",
        "leadership stayed with the selection"
    );
    assert_eq!(status.term, moved, "no election under load");
    assert_eq!(
        store.forwarded(chosen).await,
        forwarded_before,
        "the selected leader served every order itself"
    );
    let (_, _, count) = store.converged().await;
    assert_eq!(count, 100);
    store.shutdown().await;
}
