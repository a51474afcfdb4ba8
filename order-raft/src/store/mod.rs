//! RocksDB storage for one node: the Raft log ([`log`]) and the order state machine
//! ([`state_machine`]) in one database with one write-ahead log.
//!
//! Sharing one WAL is deliberate. RocksDB recovers a prefix of its WAL after a crash, so
//! anything written before a synced write is durable once that write is: a synced log append
//! also makes every earlier state-machine write durable, and the state machine can never be
//! found *behind* a log purge that was written after it. That lets state-machine writes skip
//! their own fsync while the Raft contract (appends and votes durable before they are
//! reported) still holds.

// openraft's storage traits return its `StorageError` (over 200 bytes); the helpers here return
// it too, so that `?` carries errors to the trait methods unchanged.
#![allow(clippy::result_large_err)]

pub mod log;
pub mod state_machine;

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, DB, Options};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use log::RocksLogStore;
pub use state_machine::{OrderReader, RocksStateMachine};

/// Log entries by index (big-endian u64 keys sort by index).
pub(crate) const CF_LOG: &str = "log";
/// Vote, committed log id, last purged log id.
pub(crate) const CF_RAFT: &str = "raft_meta";
/// Orders by number (big-endian u64).
pub(crate) const CF_ORDERS: &str = "orders";
/// Order number by request id.
pub(crate) const CF_REQUESTS: &str = "requests";
/// Last applied log id, membership, digest, next order number.
pub(crate) const CF_SM_META: &str = "sm_meta";
/// The current snapshot.
pub(crate) const CF_SNAPSHOT: &str = "snapshot";

const ALL_CFS: [&str; 6] = [
    CF_LOG,
    CF_RAFT,
    CF_ORDERS,
    CF_REQUESTS,
    CF_SM_META,
    CF_SNAPSHOT,
];

/// What the store's own functions (opening, reading orders outside Raft) fail with. The
/// storage traits return openraft's `StorageError` instead, as openraft requires.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("RocksDB: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt data on disk: {0}")]
    Corrupt(String),
    #[error("cannot load the state machine: {0}")]
    Load(String),
}

/// Opens (or creates) a node's database and returns its log store and state machine.
pub fn open(dir: &Path) -> Result<(RocksLogStore, RocksStateMachine), StoreError> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let cfs = ALL_CFS.map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
    let db = Arc::new(DB::open_cf_descriptors(&opts, dir, cfs)?);
    let log = RocksLogStore::new(db.clone());
    let sm = RocksStateMachine::new(db).map_err(|err| StoreError::Load(err.to_string()))?;
    Ok((log, sm))
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

/// Values on disk are bincode (standard configuration).
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, bincode::error::EncodeError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::error::DecodeError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard()).map(|(value, _)| value)
}

#[cfg(test)]
mod tests;
