//! RocksDB storage for one node: the Raft log ([`log`]) and the order state machine
//! ([`state_machine`]) in one database with one write-ahead log, and the snapshots as files
//! beside it ([`snapshot`]).
//!
//! Sharing one WAL is deliberate. RocksDB recovers a prefix of its WAL after a crash, so
//! anything written before a synced write is durable once that write is: a synced log append
//! also makes every earlier state-machine write durable, and the state machine can never be
//! found *behind* a log purge written after it. That lets state-machine writes skip their own
//! fsync while the Raft contract (appends and votes durable before they are reported) still
//! holds. The log store makes the "written after" true: it never purges past what the state
//! machine has applied.

mod apply;
pub mod log;
mod reader;
pub mod records;
pub mod rules;
mod snapshot;
pub mod snapshot_file;
pub mod state_machine;
mod summary;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rocksdb::{ColumnFamily, DB};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use log::RocksLogStore;
pub use reader::{OrderReader, RequestState};
pub use records::{AbandonRecord, StoredOrder};
pub use state_machine::{RocksStateMachine, SnapshotInbox};

/// Log entries by index (big-endian u64 keys sort by index).
pub(crate) const CF_LOG: &str = "log";
/// Vote, committed log id, last purged log id, storage format.
pub(crate) const CF_RAFT: &str = "raft_meta";
/// Orders by number (big-endian u64).
pub(crate) const CF_ORDERS: &str = "orders";
/// Order number by request id.
pub(crate) const CF_REQUESTS: &str = "requests";
/// (sequence number, last abandoned attempt) by request id.
pub(crate) const CF_ABANDONED: &str = "abandoned";
/// Abandonment records by sequence number (big-endian u64): retention order.
pub(crate) const CF_ABANDON_LOG: &str = "abandon_log";
/// The state machine's summary, and the marker of an install in progress.
pub(crate) const CF_SM_META: &str = "sm_meta";
/// The current snapshot's metadata and file name.
pub(crate) const CF_SNAPSHOT: &str = "snapshot";

const ALL_CFS: [&str; 8] = [
    CF_LOG,
    CF_RAFT,
    CF_ORDERS,
    CF_REQUESTS,
    CF_ABANDONED,
    CF_ABANDON_LOG,
    CF_SM_META,
    CF_SNAPSHOT,
];

/// The on-disk format this code writes; a database without it was made by an older version.
/// 3: the summary's counters moved into one struct (issue 20).
const FORMAT: u32 = 3;
const KEY_FORMAT: &[u8] = b"format";

/// What the store's own functions (opening, reading orders outside Raft) fail with. The
/// storage traits return `std::io::Error` instead, as openraft (0.10) requires.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("RocksDB: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot encode a record: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("corrupt data on disk: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Format(String),
}

/// Opens (or creates) a node's database in `dir` (snapshots in `dir/snapshots`) and returns
/// its log store and state machine. `retention`: how long the state machine remembers request
/// ids (the same on every replica). `crash_mid_install`: fault injection, see
/// `snapshot::apply_snapshot_file`.
pub fn open(
    dir: &Path,
    retention: Duration,
    crash_mid_install: bool,
) -> Result<(RocksLogStore, RocksStateMachine), StoreError> {
    let db = Arc::new(api::rocks::open(dir, &ALL_CFS, &LOOKED_UP_BY_REQUEST_ID)?);
    check_format(&db)?;
    let snapshots = dir.join("snapshots");
    std::fs::create_dir_all(&snapshots)?;
    let (sm, applied) =
        RocksStateMachine::open(db.clone(), snapshots, retention, crash_mid_install)?;
    let log = RocksLogStore::new(db, applied);
    Ok((log, sm))
}

/// Column families keyed by request id: every order looks its id up, once on the leader
/// before it reserves and once in every replica's apply (see [`api::rocks::open`]).
const LOOKED_UP_BY_REQUEST_ID: [&str; 2] = [CF_REQUESTS, CF_ABANDONED];

/// Refuses a database written by an older, incompatible version; stamps a new one.
fn check_format(db: &DB) -> Result<(), StoreError> {
    match db.get_cf(cf(db, CF_RAFT), KEY_FORMAT)? {
        Some(bytes) if decode::<u32>(&bytes).ok() == Some(FORMAT) => Ok(()),
        Some(_) => Err(StoreError::Format(
            "this replica's data was written by another version of the store; wipe it (cluster/down.sh --wipe)".into(),
        )),
        None => {
            let empty = db.iterator_cf(cf(db, CF_RAFT), rocksdb::IteratorMode::Start).next().is_none()
                && db.iterator_cf(cf(db, CF_LOG), rocksdb::IteratorMode::Start).next().is_none();
            if !empty {
                return Err(StoreError::Format(
                    "this replica's data was written by an older version of the store; wipe it (cluster/down.sh --wipe)".into(),
                ));
            }
            let mut write = rocksdb::WriteOptions::default();
            write.set_sync(true);
            let bytes = encode(&FORMAT).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            db.put_cf_opt(cf(db, CF_RAFT), KEY_FORMAT, bytes, &write)?;
            Ok(())
        }
    }
}

pub(crate) fn cf<'a>(db: &'a DB, name: &str) -> &'a ColumnFamily {
    // Every column family in ALL_CFS is created by `open`; a missing one is a programming error.
    db.cf_handle(name)
        .unwrap_or_else(|| panic!("column family {name} was not opened"))
}

/// Big-endian so that RocksDB's byte order is numeric order.
pub(crate) fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

pub(crate) fn index_from_key(key: &[u8]) -> Option<u64> {
    key.try_into().ok().map(u64::from_be_bytes)
}

/// Values on disk are bincode (standard configuration), each at most 64 MiB: no length read
/// from disk can make a decoder allocate more.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, bincode::error::EncodeError> {
    bincode::serde::encode_to_vec(value, config())
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::error::DecodeError> {
    bincode::serde::decode_from_slice(bytes, config()).map(|(value, _)| value)
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ 64 * 1024 * 1024 }>()
}

#[cfg(test)]
mod tests;
