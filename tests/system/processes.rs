//! The store as real processes, started by `cluster/up.sh` and broken with real kill -9.

use std::time::Duration;

use system_tests::processes::ProcessStore;
use system_tests::wait_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_sees_no_error_while_the_leader_is_killed_and_restarted() {
    let store =
        tokio::task::spawn_blocking(|| ProcessStore::up(&[("TOYSTORE_INITIAL_STOCK", "100000")]))
            .await
            .unwrap();
    let leader = store.leader().await;

    let args = "--clients 5 --prob 0.8 --iterations 1000 --seed 7 --quiet";
    let client = store
        .client(&args.split(' ').collect::<Vec<_>>())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the client starts");

    // Kill the leader once the client is well under way ...
    wait_for(
        "the client to place orders",
        Duration::from_secs(60),
        || async {
            let orders = store.status(leader).await?.orders;
            (orders >= 100).then_some(())
        },
    )
    .await;
    let killed = store.script_ok("kill.sh", &["leader"]);
    assert!(
        killed.contains(&leader.to_string()),
        "kill.sh named the leader: {killed}"
    );

    // ... and bring it back after the others have moved on without it.
    let survivor = 1 + leader % 3;
    let at_kill = wait_for("a new leader", Duration::from_secs(30), || async {
        let status = store.status(survivor).await?;
        (status.leader.is_some_and(|l| l != leader)).then_some(status.orders)
    })
    .await;
    wait_for(
        "orders committed without the old leader",
        Duration::from_secs(60),
        || async { (store.status(survivor).await?.orders >= at_kill + 100).then_some(()) },
    )
    .await;
    store.script_ok("restart.sh", &[&leader.to_string()]);

    let run = tokio::task::spawn_blocking(move || client.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        run.status.success(),
        "the client saw an error or a lost order ({}):\n{}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let converged = store.converged().await;
    assert!(converged.orders >= 200);
    let status = store
        .status(leader)
        .await
        .expect("the restarted replica answers");
    assert!(
        status.entries_received > 0,
        "the restarted replica caught up through Raft"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_crash_between_the_reservation_and_the_commit_yields_exactly_one_order() {
    let store =
        tokio::task::spawn_blocking(|| ProcessStore::up(&[("TOYSTORE_FAULT_INJECTION", "1")]))
            .await
            .unwrap();
    let leader = store.leader().await;
    let catalog = store.catalog();
    let product = |name: &'static str| {
        let catalog = catalog.clone();
        async move { catalog.product(name).await.unwrap() }
    };
    let before = product("Monopoly").await.quantity;

    // Arm the leader to abort right after the catalog has reserved the toy for this request.
    store
        .replica(leader)
        .arm_fault(&serde_json::json!({"crash_after_reserve": "crash-between"}))
        .await
        .expect("fault injection is enabled");

    let placed = store
        .frontend()
        .order("Monopoly", 2, Some("crash-between"))
        .await
        .expect("the front-end's retry places the order on the new leader");
    assert!(
        store.status(leader).await.is_none(),
        "the armed leader really crashed"
    );
    let record = store.frontend().lookup(placed.order_number).await.unwrap();
    assert_eq!((record.name.as_str(), record.quantity), ("Monopoly", 2));
    assert_eq!(
        product("Monopoly").await.quantity,
        before - 2,
        "one decrement"
    );
    store.script_ok("restart.sh", &[&leader.to_string()]);
    let converged = store.converged().await;
    assert_eq!(converged.orders, 1, "one order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_is_idempotent_and_a_restart_keeps_every_order() {
    let store = tokio::task::spawn_blocking(|| ProcessStore::up(&[]))
        .await
        .unwrap();
    let placed = store.frontend().order("Tux", 1, None).await.unwrap();
    let pids = std::fs::read_dir(store.home().join("pids"))
        .unwrap()
        .count();
    assert_eq!(pids, 5, "catalog, three replicas, front-end");

    let again = store.script_ok("up.sh", &[]);
    assert!(again.contains("already running"), "{again}");
    store.script_ok("down.sh", &[]);
    store.script_ok("up.sh", &[]);
    let record = store
        .frontend()
        .lookup(placed.order_number)
        .await
        .expect("the order survived down.sh and up.sh");
    assert_eq!(record.name, "Tux");
    let status = store.script_ok("status.sh", &[]);
    assert!(status.contains("leader"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_raft_core_stops_exits_and_restarts_on_its_data() {
    let store =
        tokio::task::spawn_blocking(|| ProcessStore::up(&[("TOYSTORE_FAULT_INJECTION", "1")]))
            .await
            .unwrap();
    let leader = store.leader().await;
    let broken = 1 + leader % 3;
    store.frontend().order("Slinky", 1, None).await.unwrap();
    store
        .replica(broken)
        .arm_fault(&serde_json::json!({"stop_raft": true}))
        .await
        .expect("fault injection is enabled");
    // The process notices, logs why and exits, so the scripts see it is gone.
    wait_for(
        "the broken replica's process to exit",
        Duration::from_secs(30),
        || async {
            let status = store.script_ok("status.sh", &[]);
            let row = status
                .lines()
                .find(|line| line.split_whitespace().next() == Some(&broken.to_string()))?
                .to_string();
            // node [*] pid alive …: the * marks the front-end's selected replica.
            row.split_whitespace()
                .filter(|field| *field != "*")
                .nth(2)
                .is_some_and(|alive| alive == "no")
                .then_some(())
        },
    )
    .await;
    let log = std::fs::read_to_string(store.home().join(format!("logs/node-{broken}.log")))
        .expect("the replica's log");
    assert!(log.contains("the Raft core stopped"), "{log}");
    store.script_ok("restart.sh", &[&broken.to_string()]);
    let converged = store.converged().await;
    assert_eq!(converged.orders, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_orphaned_by_a_crash_is_released_through_the_log() {
    let store = tokio::task::spawn_blocking(|| {
        ProcessStore::up(&[
            ("TOYSTORE_FAULT_INJECTION", "1"),
            ("TOYSTORE_RESERVATION_TIMEOUT_MS", "2000"),
        ])
    })
    .await
    .unwrap();
    let leader = store.leader().await;
    let frontend = store.frontend();
    let before = frontend.product("Etch A Sketch").await.unwrap().quantity;
    let orders_before = store.converged().await.orders;

    // The leader takes the stock and dies before the order reaches the log; the order was sent
    // to it directly, as by a front-end that then died too: nobody retries it.
    store
        .replica(leader)
        .arm_fault(&serde_json::json!({"crash_after_reserve": "orphan"}))
        .await
        .expect("fault injection is enabled");
    let order = api::order::PlaceOrder {
        request_id: "orphan".into(),
        name: "Etch A Sketch".into(),
        quantity: 3,
    };
    let lost = store
        .replica(leader)
        .place(&order, api::order::Hop::default())
        .await;
    assert!(lost.is_err(), "the leader died before answering");
    // The front-end's cache shows the reservation (its invalidation came before the crash) ...
    assert_eq!(
        frontend.product("Etch A Sketch").await.unwrap().quantity,
        before - 3
    );

    // ... and the new leader settles it through the log once it is older than the bound: the
    // units come back, the cache is told, and no order exists.
    wait_for(
        "the orphaned reservation to be released",
        Duration::from_secs(30),
        || async {
            let shown = frontend.product("Etch A Sketch").await.ok()?.quantity;
            (shown == before).then_some(())
        },
    )
    .await;
    let stock = store.catalog().stock().await.unwrap();
    let toy = stock.iter().find(|t| t.name == "Etch A Sketch").unwrap();
    assert_eq!((toy.quantity, toy.pending), (before, 0));
    store.script_ok("restart.sh", &[&leader.to_string()]);
    assert_eq!(
        store.converged().await.orders,
        orders_before,
        "no order exists"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_in_the_middle_of_a_snapshot_install_recovers_and_converges() {
    let store = tokio::task::spawn_blocking(|| {
        ProcessStore::up(&[
            ("TOYSTORE_FAULT_INJECTION", "1"),
            // A snapshot every 20 entries, no log kept behind it, one entry per order: the
            // stopped replica must catch up from a snapshot.
            ("TOYSTORE_SNAPSHOT_EVERY", "20"),
            ("TOYSTORE_KEEP_LOGS", "0"),
            ("TOYSTORE_BATCH_MAX", "1"),
        ])
    })
    .await
    .unwrap();
    let leader = store.leader().await;
    let lagging = 1 + leader % 3;
    let behind = store
        .status(lagging)
        .await
        .expect("the replica answers before it is killed")
        .last_log_index;
    store.script_ok("kill.sh", &[&lagging.to_string()]);
    let frontend = store.frontend();
    for i in 0..60 {
        frontend
            .order("Rubik's Cube", 1, Some(&format!("missed-{i}")))
            .await
            .expect("the majority commits");
    }
    // openraft 0.10 purges nothing a replication in flight still needs; the leader lets go of
    // the killed replica's entries when a retry fails, a backoff after the snapshot. Restarted
    // before that, the replica would catch up from the log and never install a snapshot.
    wait_for(
        "the leader to purge the entries the killed replica misses",
        Duration::from_secs(30),
        || async {
            let status = store.status(leader).await?;
            (status.purged_index > behind).then_some(())
        },
    )
    .await;

    // Back with a fault armed: it aborts half-way through installing the snapshot, with its old
    // state deleted and the new one partly written.
    // restart.sh may see it die while it waits for its health: its verdict does not matter.
    let _ = store.script_with_env(
        "restart.sh",
        &[&lagging.to_string()],
        &[("TOYSTORE_FAULT_CRASH_MID_INSTALL", "1")],
    );
    wait_for(
        "the replica to crash in the install",
        Duration::from_secs(30),
        || async {
            let log =
                std::fs::read_to_string(store.home().join(format!("logs/node-{lagging}.log")))
                    .ok()?;
            let alive = store.status(lagging).await.is_some();
            (log.contains("crashing in the middle of a snapshot install") && !alive).then_some(())
        },
    )
    .await;

    store.script_ok("restart.sh", &[&lagging.to_string()]);
    let converged = store.converged().await;
    assert_eq!(converged.orders, 60);
    let log = std::fs::read_to_string(store.home().join(format!("logs/node-{lagging}.log")))
        .expect("the replica's log");
    assert!(
        log.contains("finishing a snapshot install a crash interrupted"),
        "the restart finished the interrupted install: {log}"
    );
}
