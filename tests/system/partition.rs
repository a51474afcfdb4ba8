//! A real network cut between the replicas: every replica reaches its peers through a
//! [`ProxyMesh`] of fault proxies, and the tests isolate the leader or a follower.

use std::time::Duration;

use system_tests::proxy::ProxyMesh;
use system_tests::store::{StoreOptions, TestStore, replica_ports};
use system_tests::wait_for;

/// Three replicas that reach each other only through the proxies of the returned mesh.
async fn store_behind_proxies() -> (ProxyMesh, TestStore) {
    let ports = replica_ports();
    let mesh = ProxyMesh::start(&ports).await;
    let options = StoreOptions {
        address_books: Some(mesh.address_books()),
        ..Default::default()
    };
    let store = TestStore::start_on(ports, options).await;
    (mesh, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_acknowledges_nothing_and_the_majority_moves_on() {
    let (mesh, store) = store_behind_proxies().await;

    let old = store.leader().await;
    let mut acknowledged = Vec::new();
    for i in 0..10 {
        let placed = store
            .place(old, &format!("before-{i}"), "Tux", 1)
            .await
            .unwrap();
        acknowledged.push((placed.order_number, "Tux", 1));
    }
    store.converged().await;

    // Isolate the leader: every link to or from it goes dark.
    mesh.isolate(old);

    // An order sent to the isolated leader is refused, never acknowledged. The refusal is the
    // leader's own 503 at its write deadline: a hang would end in the test client's timeout,
    // which is not an enveloped 503.
    let isolated = store.place(old, "isolated-order", "Rocking Horse", 7).await;
    let err = isolated.expect_err("an isolated leader must not acknowledge a write");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(503), "{err}");
    // An order it holds is committed and can never change: it may answer it.
    let held = store
        .lookup(old, 0)
        .await
        .expect("a committed order is never stale");
    assert_eq!((held.name.as_str(), held.quantity), ("Tux", 1));

    // The majority elects a new leader and keeps committing.
    let majority: Vec<u64> = (1..=3).filter(|id| *id != old).collect();
    let new = store.leader_among(&majority).await;
    assert_ne!(new, old);
    for i in 0..10 {
        let placed = store
            .place(majority[i % 2], &format!("after-{i}"), "Lego", 2)
            .await
            .unwrap();
        acknowledged.push((placed.order_number, "Lego", 2));
    }
    // An order it does not hold it cannot prove absent: it refuses rather than answer 404
    // for an order the majority acknowledged (a stale read).
    let newest = acknowledged.last().map(|(number, _, _)| *number).unwrap();
    let read = store
        .lookup(old, newest)
        .await
        .expect_err("no stale read from an isolated leader");
    assert_eq!(read.status().map(|s| s.as_u16()), Some(503), "{read}");

    // Heal: the old leader steps down, drops its uncommitted entry and catches up.
    mesh.heal();
    wait_for(
        "the old leader to follow the new one",
        Duration::from_secs(20),
        || async {
            let status = store.status(old).await.ok()?;
            (status.leader == Some(new) && status.role == "follower").then_some(())
        },
    )
    .await;
    let (_, _, orders) = store.converged().await;
    assert_eq!(
        orders,
        acknowledged.len() as u64,
        "exactly the acknowledged orders exist"
    );
    for (number, name, quantity) in &acknowledged {
        let order = store.lookup(new, *number).await.unwrap();
        assert_eq!((order.name.as_str(), order.quantity), (*name, *quantity));
    }
    // The refused order is nowhere: nothing is a Rocking Horse.
    for number in 0..orders {
        assert_ne!(
            store.lookup(new, number).await.unwrap().name,
            "Rocking Horse"
        );
    }
    store.shutdown().await;
}

/// Pre-vote: a follower cut off from both peers for many election timeouts asks them whether
/// they would vote for it, hears nothing, and so never raises its term alone. When the link
/// heals it follows the leader it had, in the same term: no election. (Without pre-vote it
/// campaigns every election timeout, each time in a higher term, and the first answer it sends
/// the leader after the heal carries that term and deposes the leader.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_cut_off_and_healed_rejoins_without_an_election() {
    let (mesh, store) = store_behind_proxies().await;
    let leader = store.leader().await;
    store.place(leader, "warm-up", "Tux", 1).await.unwrap();
    store.converged().await;
    let term = store.status(leader).await.unwrap().term;

    let cut = 1 + leader % 3;
    mesh.isolate(cut);
    for i in 0..10 {
        store
            .place(leader, &format!("while-cut-{i}"), "Tux", 1)
            .await
            .expect("the leader and the other follower are a quorum");
    }
    // The test cluster's lease is 1.2 s and its election timeouts 0.6-1.2 s
    // (`Config::for_test`): 5 s is room for three campaigns or more.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let alone = store.status(cut).await.unwrap();
    assert_eq!(
        alone.term, term,
        "a replica that cannot reach a quorum does not raise its term"
    );

    mesh.heal();
    let (_, _, orders) = store.converged().await;
    assert_eq!(orders, 11);
    for id in 1..=3 {
        let status = store.status(id).await.unwrap();
        assert_eq!(
            (status.leader, status.term),
            (Some(leader), term),
            "replica {id} follows the leader it had, in the same term"
        );
    }
    store.shutdown().await;
}
