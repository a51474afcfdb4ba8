//! Storage tests: openraft's own conformance suite against the RocksDB store, plus the
//! properties this project adds (dense numbering, dedup, digest, durability across reopen).

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, RaftSnapshotBuilder};
use tempfile::TempDir;

use super::{RocksLogStore, RocksStateMachine, open};
use crate::store::state_machine::chain_digest;
use crate::types::{Entry, LogId, NewOrder, OrderBatch, OrderOutcome, StorageError, TypeConfig};

struct RocksBuilder;

impl StoreBuilder<TypeConfig, RocksLogStore, RocksStateMachine, TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(TempDir, RocksLogStore, RocksStateMachine), StorageError> {
        let dir = TempDir::new().expect("a temporary directory");
        let (log, sm) = open(dir.path()).expect("a fresh RocksDB opens");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() -> Result<(), StorageError> {
    Suite::test_all(RocksBuilder)
}

fn order(id: &str, name: &str, quantity: u32) -> NewOrder {
    NewOrder {
        request_id: id.into(),
        name: name.into(),
        quantity,
    }
}

fn entry(index: u64, orders: Vec<NewOrder>) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(OrderBatch { orders }),
    }
}

#[tokio::test]
async fn applying_numbers_orders_densely_and_deduplicates_by_request_id() {
    let dir = TempDir::new().unwrap();
    let (_log, mut sm) = open(dir.path()).unwrap();
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
        results[0].outcomes,
        vec![OrderOutcome::Placed(0), OrderOutcome::Placed(1)]
    );
    assert_eq!(
        results[1].outcomes,
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

    let mut digest = [0u8; 32];
    for (n, name, q) in [(0, "Tux", 1), (1, "Lego", 2), (2, "Tux", 3)] {
        digest = chain_digest(&digest, n, name, q);
    }
    assert_eq!(reader.summary().digest, digest);
}

#[tokio::test]
async fn state_machine_and_log_survive_reopening() {
    let dir = TempDir::new().unwrap();
    {
        let (mut log, mut sm) = open(dir.path()).unwrap();
        let entries = vec![
            entry(1, vec![order("a", "Tux", 1)]),
            entry(2, vec![order("b", "Yo-Yo", 4)]),
        ];
        log.blocking_append(entries.clone()).await.unwrap();
        sm.apply(entries).await.unwrap();
    }
    // Drop everything, including the sync thread, before reopening the same directory.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (mut log, mut sm) = loop {
        match open(dir.path()) {
            Ok(stores) => break stores,
            Err(err) if std::time::Instant::now() < deadline => {
                let _ = err;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(err) => panic!("cannot reopen: {err}"),
        }
    };
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id.map(|id| id.index), Some(2));
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied.map(|id| id.index), Some(2));
    assert_eq!(sm.reader().by_request("b").unwrap().unwrap().number, 1);
}

#[tokio::test]
async fn snapshots_carry_the_orders_to_another_replica() {
    let source_dir = TempDir::new().unwrap();
    let (_log, mut source) = open(source_dir.path()).unwrap();
    source
        .apply(vec![entry(
            1,
            vec![order("a", "Tux", 1), order("b", "Kite", 2)],
        )])
        .await
        .unwrap();
    let snapshot = source
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();

    let target_dir = TempDir::new().unwrap();
    let (_log, mut target) = open(target_dir.path()).unwrap();
    target
        .apply(vec![entry(1, vec![order("stale", "Slinky", 5)])])
        .await
        .unwrap();
    target
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();

    let reader = target.reader();
    assert_eq!(reader.summary(), source.reader().summary());
    assert!(
        reader.by_request("stale").unwrap().is_none(),
        "state before the snapshot is gone"
    );
    assert_eq!(reader.order(1).unwrap().unwrap().name, "Kite");
    let current = target
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("the installed snapshot is kept");
    assert_eq!(current.meta, snapshot.meta);
}

#[tokio::test]
async fn a_snapshot_whose_digest_does_not_match_is_refused() {
    let dir = TempDir::new().unwrap();
    let (_log, mut sm) = open(dir.path()).unwrap();
    sm.apply(vec![entry(1, vec![order("a", "Tux", 1)])])
        .await
        .unwrap();
    let snapshot = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let mut data = snapshot.snapshot.into_inner();
    // The last 32 bytes are the digest; flip one bit.
    let last = data.len() - 1;
    data[last] ^= 1;
    let other = TempDir::new().unwrap();
    let (_log, mut target) = open(other.path()).unwrap();
    target
        .apply(vec![entry(1, vec![order("mine", "Lego", 1)])])
        .await
        .unwrap();
    let refused = target
        .install_snapshot(&snapshot.meta, Box::new(std::io::Cursor::new(data)))
        .await;
    assert!(refused.is_err());
    assert_eq!(
        target.reader().summary().next_number,
        1,
        "the state machine is left as it was"
    );
}
