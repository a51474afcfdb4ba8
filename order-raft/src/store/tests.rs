//! Storage tests: openraft's own conformance suite against the RocksDB store, plus the
//! properties this project adds: dense numbering, dedup, one outcome per reservation, the
//! digest, durability across reopening, streamed snapshots, and the crash windows around
//! purges, builds and installs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use api::catalog::ReservationId;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader, RaftSnapshotBuilder};
use proptest::prelude::*;
use tempfile::TempDir;

use super::{RocksLogStore, RocksStateMachine, open};
use crate::store::state_machine::chain_digest;
use crate::types::{
    Entry, LogId, NewOrder, OrderOutcome, Proposal, StorageError, TypeConfig, Verdict,
};

const DAY: Duration = Duration::from_secs(86_400);

fn open_store(dir: &TempDir) -> (RocksLogStore, RocksStateMachine) {
    open(dir.path(), DAY, false).expect("the store opens")
}

struct RocksBuilder;

impl StoreBuilder<TypeConfig, RocksLogStore, RocksStateMachine, TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(TempDir, RocksLogStore, RocksStateMachine), StorageError> {
        let dir = TempDir::new().expect("a temporary directory");
        let (log, sm) = open_store(&dir);
        Ok((dir, log.without_purge_guard(), sm))
    }
}

#[test]
fn openraft_storage_suite() -> Result<(), StorageError> {
    Suite::test_all(RocksBuilder)
}

fn order(id: &str, name: &str, quantity: u32) -> NewOrder {
    attempt(id, 0, name, quantity)
}

fn attempt(id: &str, attempt: u32, name: &str, quantity: u32) -> NewOrder {
    NewOrder {
        request_id: id.into(),
        attempt,
        name: name.into(),
        quantity,
    }
}

fn reservation(id: &str, attempt: u32) -> ReservationId {
    ReservationId {
        request_id: id.into(),
        attempt,
    }
}

fn log_id(index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(1, 1), index)
}

fn entry(index: u64, orders: Vec<NewOrder>) -> Entry {
    proposal(index, 1_000, orders, Vec::new())
}

fn proposal(
    index: u64,
    stamp_ms: u64,
    orders: Vec<NewOrder>,
    abandons: Vec<ReservationId>,
) -> Entry {
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Normal(Proposal {
            stamp_ms,
            orders,
            abandons,
        }),
    }
}

#[tokio::test]
async fn applying_numbers_orders_densely_and_deduplicates_by_request_id() {
    let dir = TempDir::new().unwrap();
    let (_log, mut sm) = open_store(&dir);
    let results = sm
        .apply(vec![
            entry(1, vec![order("a", "Tux", 1), order("b", "Lego", 2)]),
            // "a" again in a later entry of the same apply call, and a conflicting reuse of "b".
            entry(
                2,
                vec![
                    order("c", "Tux", 3),
                    order("a", "Tux", 1),
                    order("b", "Lego", 9),
                ],
            ),
        ])
        .await
        .unwrap();
    assert_eq!(
        results[0].orders,
        vec![OrderOutcome::Placed(0), OrderOutcome::Placed(1)]
    );
    assert_eq!(
        results[1].orders,
        vec![
            OrderOutcome::Placed(2),
            OrderOutcome::Duplicate(0),
            OrderOutcome::Conflict(1)
        ]
    );
    let reader = sm.reader();
    assert_eq!(reader.summary().next_number, 3);
    assert_eq!(reader.by_request("c").unwrap().unwrap().number, 2);
    assert_eq!(reader.order(1).unwrap().unwrap().name, "Lego");
    assert!(reader.order(3).unwrap().is_none());
    assert_eq!(reader.orders(1, 10).unwrap().len(), 2);

    let mut digest = [0u8; 32];
    for (n, name, q) in [(0, "Tux", 1), (1, "Lego", 2), (2, "Tux", 3)] {
        digest = chain_digest(&digest, n, name, q);
    }
    assert_eq!(reader.summary().digest, digest);
}

#[tokio::test]
async fn whichever_of_order_and_abandonment_comes_first_wins() {
    let dir = TempDir::new().unwrap();
    let (_log, mut sm) = open_store(&dir);
    let decided = sm
        .apply(vec![
            // "early" is ordered, then its abandonment arrives: the order keeps the stock.
            proposal(1, 1_000, vec![order("early", "Tux", 1)], Vec::new()),
            proposal(2, 1_000, Vec::new(), vec![reservation("early", 0)]),
            // "late" is abandoned first: its order is refused, a retry orders anew.
            proposal(3, 1_000, Vec::new(), vec![reservation("late", 0)]),
            proposal(4, 1_000, vec![order("late", "Kite", 2)], Vec::new()),
            proposal(5, 1_000, vec![attempt("late", 1, "Kite", 2)], Vec::new()),
            // An abandonment of the attempt the order did not use releases it.
            proposal(6, 1_000, Vec::new(), vec![reservation("late", 0)]),
        ])
        .await
        .unwrap();
    assert_eq!(decided[0].orders, vec![OrderOutcome::Placed(0)]);
    assert_eq!(decided[1].abandons, vec![Verdict::Confirm]);
    assert_eq!(decided[2].abandons, vec![Verdict::Release]);
    assert_eq!(decided[3].orders, vec![OrderOutcome::Abandoned]);
    assert_eq!(decided[4].orders, vec![OrderOutcome::Placed(1)]);
    assert_eq!(decided[5].abandons, vec![Verdict::Release]);
    let request = sm.reader().request("late").unwrap();
    assert_eq!(request.placed.map(|o| (o.number, o.attempt)), Some((1, 1)));
    assert_eq!(request.abandoned_through, Some(0));
    let fresh = sm.reader().request("never-seen").unwrap();
    assert_eq!(fresh.next_attempt(), 0);
}

#[tokio::test]
async fn request_ids_are_forgotten_after_the_retention_by_the_logs_clock() {
    let dir = TempDir::new().unwrap();
    let (_log, mut sm) = open(dir.path(), Duration::from_secs(60), false).unwrap();
    sm.apply(vec![
        proposal(1, 1_000, vec![order("old", "Tux", 1)], Vec::new()),
        proposal(2, 1_000, Vec::new(), vec![reservation("gone", 0)]),
    ])
    .await
    .unwrap();
    // A minute and a bit later by the leaders' clocks.
    let decided = sm
        .apply(vec![proposal(
            3,
            70_000,
            vec![order("new", "Tux", 1)],
            Vec::new(),
        )])
        .await
        .unwrap();
    assert_eq!(decided[0].orders, vec![OrderOutcome::Placed(1)]);
    let reader = sm.reader();
    assert!(reader.by_request("old").unwrap().is_none(), "pruned");
    assert_eq!(reader.request("gone").unwrap().abandoned_through, None);
    assert!(reader.order(0).unwrap().is_some(), "the order itself stays");
    assert_eq!(reader.by_request("new").unwrap().unwrap().number, 1);
    // A retry of the pruned id is a new order, numbered densely.
    let again = sm
        .apply(vec![proposal(
            4,
            70_001,
            vec![order("old", "Tux", 1)],
            Vec::new(),
        )])
        .await
        .unwrap();
    assert_eq!(again[0].orders, vec![OrderOutcome::Placed(2)]);
}

#[tokio::test]
async fn state_machine_and_log_survive_reopening() {
    let dir = TempDir::new().unwrap();
    {
        let (mut log, mut sm) = open_store(&dir);
        let entries = vec![
            entry(1, vec![order("a", "Tux", 1)]),
            entry(2, vec![order("b", "Yo-Yo", 4)]),
        ];
        log.blocking_append(entries.clone()).await.unwrap();
        sm.apply(entries).await.unwrap();
    }
    // Drop everything, including the sync thread, before reopening the same directory.
    let (mut log, mut sm) = reopen(&dir).await;
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id.map(|id| id.index), Some(2));
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied.map(|id| id.index), Some(2));
    assert_eq!(sm.reader().by_request("b").unwrap().unwrap().number, 1);
}

/// Opens `dir` again once the previous handles are gone (their last RocksDB handles close
/// shortly after they are dropped).
async fn reopen(dir: &TempDir) -> (RocksLogStore, RocksStateMachine) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match open(dir.path(), DAY, false) {
            Ok(stores) => return stores,
            Err(err) if std::time::Instant::now() < deadline => {
                let _ = err;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => panic!("cannot reopen: {err}"),
        }
    }
}

/// A state machine with `orders` orders (in entries of 100) and one abandonment.
async fn filled(orders: u64) -> (TempDir, RocksStateMachine) {
    let dir = TempDir::new().unwrap();
    let (_log, mut sm) = open_store(&dir);
    let mut entries = Vec::new();
    for chunk in 0..orders.div_ceil(100) {
        let from = chunk * 100;
        let to = (from + 100).min(orders);
        let batch = (from..to)
            .map(|i| order(&format!("o{i}"), "Marbles", 1 + (i % 3) as u32))
            .collect();
        entries.push(proposal(chunk + 1, 1_000, batch, Vec::new()));
    }
    let next = orders.div_ceil(100) + 1;
    entries.push(proposal(
        next,
        1_000,
        Vec::new(),
        vec![reservation("dropped", 0)],
    ));
    sm.apply(entries).await.unwrap();
    (dir, sm)
}

#[tokio::test]
async fn snapshots_carry_orders_request_ids_and_abandonments_to_another_replica() {
    let (_source_dir, mut source) = filled(250).await;
    let snapshot = source
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();

    let target_dir = TempDir::new().unwrap();
    let (_log, mut target) = open_store(&target_dir);
    target
        .apply(vec![entry(1, vec![order("stale", "Slinky", 5)])])
        .await
        .unwrap();
    let mut receiving = target.begin_receiving_snapshot().await.unwrap();
    let mut sent = source
        .get_current_snapshot()
        .await
        .unwrap()
        .unwrap()
        .snapshot;
    tokio::io::copy(&mut sent, &mut *receiving).await.unwrap();
    target
        .install_snapshot(&snapshot.meta, receiving)
        .await
        .unwrap();

    let reader = target.reader();
    assert_eq!(reader.summary(), source.reader().summary());
    assert!(
        reader.by_request("stale").unwrap().is_none(),
        "state before the snapshot is gone"
    );
    assert_eq!(reader.by_request("o249").unwrap().unwrap().number, 249);
    assert_eq!(
        reader.request("dropped").unwrap().abandoned_through,
        Some(0)
    );
    let current = target
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("the installed snapshot is kept");
    assert_eq!(current.meta, snapshot.meta);
    assert_eq!(reader.snapshots_installed(), 1);
}

#[tokio::test]
async fn a_snapshot_whose_digest_does_not_match_is_refused_and_changes_nothing() {
    let (_dir, mut sm) = filled(3).await;
    let snapshot = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let mut data = std::fs::read(snapshot.snapshot.path()).unwrap();
    // The digest follows the magic and the two counts in the header; flip a bit in it.
    data[8 + 2] ^= 1;
    let other = TempDir::new().unwrap();
    let (_log, mut target) = open_store(&other);
    target
        .apply(vec![entry(1, vec![order("mine", "Lego", 1)])])
        .await
        .unwrap();
    let mut receiving = target.begin_receiving_snapshot().await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut *receiving, &data)
        .await
        .unwrap();
    let refused = target.install_snapshot(&snapshot.meta, receiving).await;
    assert!(refused.is_err());
    assert_eq!(
        target.reader().summary().next_number,
        1,
        "the state machine is left as it was"
    );
}

#[tokio::test]
async fn a_purge_waits_until_the_state_machine_has_applied_that_far() {
    let dir = TempDir::new().unwrap();
    let (mut log, mut sm) = open_store(&dir);
    let entries: Vec<Entry> = (1..=6)
        .map(|i| entry(i, vec![order(&format!("p{i}"), "Tux", 1)]))
        .collect();
    log.blocking_append(entries.clone()).await.unwrap();
    sm.apply(entries[..2].to_vec()).await.unwrap();

    // openraft may ask to purge past what the state machine has (a snapshot still being
    // installed): the purge must wait.
    let mut purging = log.clone();
    let purge = tokio::spawn(async move { purging.purge(log_id(5)).await });
    tokio::task::yield_now().await;
    let mut reader = log.get_log_reader().await;
    assert_eq!(
        reader.try_get_log_entries(3..=5).await.unwrap().len(),
        3,
        "nothing past the state machine is purged"
    );
    assert!(!purge.is_finished());
    sm.apply(entries[2..].to_vec()).await.unwrap();
    purge.await.unwrap().unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(5)));
}

#[tokio::test]
async fn an_install_interrupted_by_a_crash_is_finished_on_the_next_start() {
    let (_source_dir, mut source) = filled(120).await;
    let snapshot = source
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let path = snapshot.snapshot.path().to_path_buf();
    let target_dir = TempDir::new().unwrap();
    {
        let (_log, mut target) = open_store(&target_dir);
        target
            .apply(vec![entry(1, vec![order("before", "Kite", 1)])])
            .await
            .unwrap();
        // What a crash right after the install marker leaves: the file in place, the marker
        // written, the old state partly deleted.
        super::state_machine::tests_support::interrupt_install(&target, &snapshot.meta, &path)
            .unwrap();
    }
    let (_log, target) = reopen(&target_dir).await;
    assert_eq!(target.reader().summary(), source.reader().summary());
    assert!(target.reader().by_request("before").unwrap().is_none());
}

#[tokio::test]
async fn a_build_racing_an_install_never_moves_the_current_snapshot_backwards() {
    let (_dir, mut source) = filled(500).await;
    let newer = source
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    for _ in 0..5 {
        let target_dir = TempDir::new().unwrap();
        let (_log, mut target) = open_store(&target_dir);
        target
            .apply(vec![entry(1, vec![order("local", "Tux", 1)])])
            .await
            .unwrap();
        let mut builder = target.get_snapshot_builder().await;
        let mut receiving = target.begin_receiving_snapshot().await.unwrap();
        let mut sent = source
            .get_current_snapshot()
            .await
            .unwrap()
            .unwrap()
            .snapshot;
        tokio::io::copy(&mut sent, &mut *receiving).await.unwrap();
        let build = tokio::spawn(async move { builder.build_snapshot().await });
        target
            .install_snapshot(&newer.meta, receiving)
            .await
            .unwrap();
        let built = build.await.unwrap().unwrap();
        let current = target.get_current_snapshot().await.unwrap().unwrap();
        assert!(
            current.meta.last_log_id >= built.meta.last_log_id,
            "current {:?} is older than a build {:?}",
            current.meta.last_log_id,
            built.meta.last_log_id
        );
        assert_eq!(current.meta.last_log_id, newer.meta.last_log_id);
    }
}

/// One step of a generated history: an order or an abandonment of one of a few request ids.
#[derive(Debug, Clone)]
enum Step {
    Order { key: u8, attempt: u8 },
    Abandon { key: u8, attempt: u8 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..6, 0u8..3).prop_map(|(key, attempt)| Step::Order { key, attempt }),
        (0u8..6, 0u8..3).prop_map(|(key, attempt)| Step::Abandon { key, attempt }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any interleaving of orders, abandonments and duplicates, cut into entries and `apply`
    /// calls anyhow: at most one order per request id, dense numbers, one verdict per
    /// reservation that never contradicts the order, and the stock that stays sold (confirmed
    /// reservations) is exactly what the orders hold.
    #[test]
    fn any_interleaving_gives_one_outcome_per_reservation(
        steps in proptest::collection::vec(step(), 1..60),
        cuts in proptest::collection::vec(1usize..5, 1..60),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let dir = TempDir::new().unwrap();
            let (_log, mut sm) = open_store(&dir);
            // Each key always orders the same toy and quantity (the catalog refuses others).
            let quantity_of = |key: u8| 1 + u32::from(key % 3);
            let mut outcomes: Vec<(Step, Option<OrderOutcome>, Option<Verdict>)> = Vec::new();
            let mut index = 0;
            let mut rest = &steps[..];
            let mut cut = cuts.iter().cycle();
            while !rest.is_empty() {
                let take = (*cut.next().unwrap()).min(rest.len());
                let (now, later) = rest.split_at(take);
                rest = later;
                let entries: Vec<Entry> = now
                    .iter()
                    .map(|s| {
                        index += 1;
                        match s {
                            Step::Order { key, attempt: a } => proposal(
                                index,
                                1_000,
                                vec![attempt(&format!("k{key}"), u32::from(*a), "Tux", quantity_of(*key))],
                                Vec::new(),
                            ),
                            Step::Abandon { key, attempt } => proposal(
                                index,
                                1_000,
                                Vec::new(),
                                vec![reservation(&format!("k{key}"), u32::from(*attempt))],
                            ),
                        }
                    })
                    .collect();
                let decided = sm.apply(entries).await.unwrap();
                for (s, d) in now.iter().zip(decided) {
                    outcomes.push((s.clone(), d.orders.first().copied(), d.abandons.first().copied()));
                }
            }
            let reader = sm.reader();
            let summary = reader.summary();
            let orders = reader.orders(0, 10_000).unwrap();
            // Dense numbers, one order per request id.
            prop_assert_eq!(orders.len() as u64, summary.next_number);
            let mut keys = BTreeSet::new();
            for (n, o) in orders.iter().enumerate() {
                prop_assert_eq!(o.number, n as u64);
                prop_assert!(keys.insert(o.request_id.clone()), "two orders for {}", o.request_id);
            }
            // The reservation each order holds; every verdict agrees with it.
            let holder: BTreeMap<String, u32> =
                orders.iter().map(|o| (o.request_id.clone(), o.attempt)).collect();
            for (s, order, verdict) in &outcomes {
                match (s, order, verdict) {
                    (Step::Abandon { key, attempt }, None, Some(v)) => {
                        let holds = holder.get(&format!("k{key}")) == Some(&u32::from(*attempt));
                        let placed_before = outcomes.iter().take_while(|(other, _, _)| !std::ptr::eq(other, s)).any(|(earlier, o, _)| matches!(
                            (earlier, o),
                            (Step::Order { key: k, attempt: a, .. }, Some(OrderOutcome::Placed(_)))
                                if k == key && a == attempt
                        ));
                        // A confirmation always belongs to the order holding the reservation,
                        // which was placed before the abandonment.
                        if *v == Verdict::Confirm {
                            prop_assert!(holds && placed_before);
                        }
                    }
                    (Step::Order { key, attempt, .. }, Some(OrderOutcome::Placed(n)), None) => {
                        prop_assert_eq!(holder.get(&format!("k{key}")), Some(&u32::from(*attempt)));
                        prop_assert_eq!(orders[*n as usize].request_id.clone(), format!("k{key}"));
                    }
                    (Step::Order { .. }, Some(_), None) => {}
                    other => prop_assert!(false, "an entry without its outcome: {:?}", other),
                }
            }
            // A reservation released by an abandonment is never the one an order holds.
            for (s, _, verdict) in &outcomes {
                if let (Step::Abandon { key, attempt }, Some(Verdict::Release)) = (s, verdict) {
                    prop_assert_ne!(holder.get(&format!("k{key}")), Some(&u32::from(*attempt)));
                }
            }
            // Stock: what stays sold is what the orders hold.
            let sold: u64 = orders.iter().map(|o| u64::from(o.quantity)).sum();
            let held: u64 = holder.keys().map(|k| {
                let key: u8 = k[1..].parse().unwrap();
                u64::from(quantity_of(key))
            }).sum();
            prop_assert_eq!(sold, held);
            Ok(())
        })?;
    }
}
