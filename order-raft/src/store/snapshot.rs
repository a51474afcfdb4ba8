//! Snapshots of the order state machine: building one from a consistent RocksDB view while
//! applying goes on, installing one received from the leader, and the record of which file is
//! current. The file format is [`super::snapshot_file`].
//!
//! - Builds and installs are serialized by one lock, and the current snapshot never moves
//!   backwards.
//! - An install verifies the file first (dense numbers, digest), then replaces the state in
//!   bounded batches under an on-disk marker, so a crash mid-install is finished on the next
//!   start. Its last batch writes the new summary, clears the marker and records the snapshot
//!   as current together: no crash can leave the installed state without a snapshot that
//!   covers it (the log behind it may be purged).
//! - The current snapshot's file is opened under the lock, so a build that replaces it cannot
//!   delete it between the record being read and the file being opened.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::RaftSnapshotBuilder;
use parking_lot::Mutex;
use rocksdb::{DB, Direction, IteratorMode, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};

use super::apply::{put_abandon, put_order};
use super::records::{AbandonRecord, StoredOrder};
use super::rules::{Counters, chain_digest};
use super::snapshot_file::{Header, SnapshotFile, SnapshotReader, SnapshotWriter, sync_dir};
use super::summary::{KEY_SUMMARY, Summary};
use super::{
    CF_ABANDON_LOG, CF_ABANDONED, CF_ORDERS, CF_REQUESTS, CF_SM_META, CF_SNAPSHOT, StoreError, cf,
    decode, encode, index_key,
};
use crate::types::{Snapshot, SnapshotMeta, TypeConfig};

pub(super) const KEY_INSTALLING: &[u8] = b"installing";
const KEY_CURRENT: &[u8] = b"current";

/// Orders written per RocksDB batch while installing a snapshot.
const INSTALL_BATCH: usize = 4096;

/// The current snapshot as recorded in RocksDB: its metadata and its file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct CurrentSnapshot {
    pub meta: SnapshotMeta,
    pub file: String,
}

/// An error of any kind as the `io::Error` openraft's storage traits return (since 0.10).
pub(super) fn io_error(e: &dyn std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// A name no other snapshot file of this process has.
pub(super) fn unique() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

pub(super) fn current_snapshot(db: &DB) -> Result<Option<CurrentSnapshot>, StoreError> {
    match db.get_pinned_cf(cf(db, CF_SNAPSHOT), KEY_CURRENT)? {
        Some(bytes) => Ok(Some(decode(&bytes).map_err(|e| {
            StoreError::Corrupt(format!("the current snapshot record: {e}"))
        })?)),
        None => Ok(None),
    }
}

/// Whether `candidate` may become the current snapshot: the current one never moves
/// backwards. Returns the one it replaces, if any.
fn replaces(
    db: &DB,
    candidate: &CurrentSnapshot,
) -> Result<Result<Option<CurrentSnapshot>, ()>, StoreError> {
    let previous = current_snapshot(db)?;
    if previous
        .as_ref()
        .is_some_and(|p| p.meta.last_log_id > candidate.meta.last_log_id)
    {
        return Ok(Err(()));
    }
    Ok(Ok(previous))
}

/// Puts the record that makes `current` the current snapshot into `batch`.
fn record_current(
    db: &DB,
    batch: &mut WriteBatch,
    current: &CurrentSnapshot,
) -> Result<(), StoreError> {
    batch.put_cf(cf(db, CF_SNAPSHOT), KEY_CURRENT, encode(current)?);
    Ok(())
}

/// Deletes the file of a snapshot that is no longer current.
fn remove_replaced(dir: &Path, previous: Option<CurrentSnapshot>, current: &CurrentSnapshot) {
    if let Some(previous) = previous
        && previous.file != current.file
    {
        let _ = std::fs::remove_file(dir.join(previous.file));
    }
}

/// Makes `current` the current snapshot unless the current one is newer; returns whether it
/// did. The caller holds the snapshot lock.
fn make_current(db: &DB, dir: &Path, current: &CurrentSnapshot) -> Result<bool, StoreError> {
    let Ok(previous) = replaces(db, current)? else {
        return Ok(false);
    };
    let mut batch = WriteBatch::default();
    record_current(db, &mut batch, current)?;
    let mut opts = WriteOptions::default();
    // Synced: the log purge that relies on this snapshot must never survive without it.
    opts.set_sync(true);
    db.write_opt(batch, &opts)?;
    remove_replaced(dir, previous, current);
    Ok(true)
}

/// Deletes snapshot files that are neither current nor being installed: half-built or
/// half-received ones a crash left behind.
pub(super) fn remove_stray_files(db: &DB, dir: &Path) -> Result<(), StoreError> {
    let keep = current_snapshot(db)?.map(|c| c.file);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".snap") && Some(&name) != keep.as_ref() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// Installs the snapshot in file `received` (blocking; the caller holds the snapshot lock).
pub(super) fn install(
    db: &DB,
    dir: &Path,
    meta: &SnapshotMeta,
    received: &Path,
    crash_mid_install: bool,
) -> Result<Summary, StoreError> {
    let name = format!("snap-{}.snap", unique());
    let path = dir.join(&name);
    if received.parent() == Some(dir) {
        std::fs::rename(received, &path)?;
    } else {
        // Not one of ours (openraft's storage suite hands over another store's file): copy.
        std::fs::copy(received, &path)?;
        std::fs::File::open(&path)?.sync_all()?;
    }
    sync_dir(dir)?;
    verify(&path)?;
    let current = CurrentSnapshot {
        meta: meta.clone(),
        file: name,
    };
    // From here on, a crash is finished on the next start (see `RocksStateMachine::open`).
    let mut opts = WriteOptions::default();
    opts.set_sync(true);
    let marker = encode(&current)?;
    db.put_cf_opt(cf(db, CF_SM_META), KEY_INSTALLING, marker, &opts)?;
    apply_snapshot_file(db, dir, &current, crash_mid_install)
}

/// Checks a snapshot file before anything is replaced: dense numbers, and a digest that
/// matches the orders it carries.
fn verify(path: &Path) -> Result<(), StoreError> {
    let corrupt = |why: String| StoreError::Corrupt(format!("snapshot {}: {why}", path.display()));
    let mut reader = SnapshotReader::open(path).map_err(|e| corrupt(e.to_string()))?;
    let mut digest = [0u8; 32];
    for number in 0..reader.header.orders {
        let order = reader.order().map_err(|e| corrupt(e.to_string()))?;
        if order.number != number {
            return Err(corrupt(format!(
                "order {number} has number {}",
                order.number
            )));
        }
        digest = chain_digest(&digest, order.number, &order.name, order.quantity);
    }
    if digest != reader.header.digest {
        return Err(corrupt("its digest does not match its orders".into()));
    }
    for _ in 0..reader.header.abandons {
        reader.abandon().map_err(|e| corrupt(e.to_string()))?;
    }
    Ok(())
}

/// Replaces the state machine with the snapshot `current` names, in bounded batches, and
/// makes it current; clears the install marker last, in the same synced batch as the summary.
/// `crash_mid_install` (fault injection) aborts the process once the old state is gone and
/// only part of the new one is written: the window the install marker covers.
pub(super) fn apply_snapshot_file(
    db: &DB,
    dir: &Path,
    current: &CurrentSnapshot,
    crash_mid_install: bool,
) -> Result<Summary, StoreError> {
    let path = dir.join(&current.file);
    let corrupt = |why: String| StoreError::Corrupt(format!("snapshot {}: {why}", path.display()));
    let mut reader = SnapshotReader::open(&path).map_err(|e| corrupt(e.to_string()))?;
    let header = reader.header.clone();
    let mut batch = WriteBatch::default();
    batch.delete_range_cf(cf(db, CF_ORDERS), index_key(0), index_key(u64::MAX));
    batch.delete_range_cf(cf(db, CF_ABANDON_LOG), index_key(0), index_key(u64::MAX));
    // Request ids are visible ASCII (< 0x7f): every one sorts below 0xff.
    batch.delete_range_cf(cf(db, CF_REQUESTS), b"".as_slice(), b"\xff".as_slice());
    batch.delete_range_cf(cf(db, CF_ABANDONED), b"".as_slice(), b"\xff".as_slice());
    let mut in_batch = 0;
    for _ in 0..header.orders {
        let order = reader.order().map_err(|e| corrupt(e.to_string()))?;
        let remembered = order.number >= header.requests_forgotten_below;
        put_order(db, &mut batch, &order, remembered)?;
        in_batch += 1;
        if crash_mid_install {
            db.write(std::mem::take(&mut batch))?;
            tracing::error!("fault injection: crashing in the middle of a snapshot install");
            std::process::abort();
        }
        if in_batch == INSTALL_BATCH {
            db.write(std::mem::take(&mut batch))?;
            in_batch = 0;
        }
    }
    // Abandonment records come in sequence order; forgetting resumes at the first one (what
    // the source had already forgotten below it is gone from the file too).
    let mut abandons_forgotten_below = header.abandon_seq;
    for _ in 0..header.abandons {
        let record = reader.abandon().map_err(|e| corrupt(e.to_string()))?;
        abandons_forgotten_below = abandons_forgotten_below.min(record.seq);
        put_abandon(db, &mut batch, &record)?;
    }
    let summary = Summary {
        last_applied: current.meta.last_log_id,
        membership: current.meta.last_membership.clone(),
        counters: Counters {
            next_number: header.orders,
            digest: header.digest,
            clock_ms: header.clock_ms,
            abandon_seq: header.abandon_seq,
        },
        requests_forgotten_below: header.requests_forgotten_below,
        abandons_forgotten_below,
    };
    batch.put_cf(cf(db, CF_SM_META), KEY_SUMMARY, encode(&summary)?);
    batch.delete_cf(cf(db, CF_SM_META), KEY_INSTALLING);
    // The snapshot becomes current in the same batch as the state it installs: a crash can
    // leave neither without the other.
    let previous = match replaces(db, current)? {
        Ok(previous) => {
            record_current(db, &mut batch, current)?;
            previous
        }
        Err(()) => None,
    };
    let mut opts = WriteOptions::default();
    // Synced: once openraft is told the install is done it may purge the log behind it.
    opts.set_sync(true);
    db.write_opt(batch, &opts)?;
    remove_replaced(dir, previous, current);
    Ok(summary)
}

/// Builds a snapshot from a consistent RocksDB view while the state machine keeps applying.
pub struct OrderSnapshotBuilder {
    pub(super) db: Arc<DB>,
    pub(super) dir: PathBuf,
    pub(super) lock: Arc<Mutex<()>>,
}

impl RaftSnapshotBuilder<TypeConfig> for OrderSnapshotBuilder {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<Snapshot, std::io::Error> {
        let (db, dir, lock) = (self.db.clone(), self.dir.clone(), self.lock.clone());
        let read = |e: &dyn std::fmt::Display| io_error(&format!("building a snapshot: {e}"));
        let (meta, file, path) = tokio::task::spawn_blocking(move || {
            let _serialized = lock.lock();
            let (meta, path) = build(&db, &dir)?;
            // Opened under the lock: a later build may replace (and delete) it as soon as the
            // lock is released, and an open handle keeps the data readable.
            let file = std::fs::File::open(&path)?;
            Ok::<_, StoreError>((meta, file, path))
        })
        .await
        .map_err(|e| read(&e))?
        .map_err(|e| read(&e))?;
        Ok(Snapshot {
            meta,
            snapshot: SnapshotFile::from_std(file, path),
        })
    }
}

/// The current snapshot, its file opened under the snapshot lock (blocking): a build that
/// replaces it cannot delete the file between the record being read and the file being opened.
pub(super) fn open_current(
    db: &DB,
    dir: &Path,
    lock: &Mutex<()>,
) -> Result<Option<(SnapshotMeta, SnapshotFile)>, StoreError> {
    let _serialized = lock.lock();
    let Some(current) = current_snapshot(db)? else {
        return Ok(None);
    };
    let path = dir.join(&current.file);
    let file = std::fs::File::open(&path)?;
    Ok(Some((current.meta, SnapshotFile::from_std(file, path))))
}

/// Writes the state machine as of now to a snapshot file and makes it current (blocking; the
/// caller holds the snapshot lock, so no install runs meanwhile).
fn build(db: &DB, dir: &Path) -> Result<(SnapshotMeta, PathBuf), StoreError> {
    let view = db.snapshot();
    let summary: Summary = match view.get_cf(cf(db, CF_SM_META), KEY_SUMMARY)? {
        Some(bytes) => decode(&bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        None => Summary::default(),
    };
    let from = index_key(summary.abandons_forgotten_below);
    let abandon_records = || {
        view.iterator_cf(
            cf(db, CF_ABANDON_LOG),
            IteratorMode::From(&from, Direction::Forward),
        )
    };
    let mut abandons = 0u64;
    for item in abandon_records() {
        item?;
        abandons += 1;
    }
    let header = Header {
        orders: summary.counters.next_number,
        abandons,
        digest: summary.counters.digest,
        clock_ms: summary.counters.clock_ms,
        requests_forgotten_below: summary.requests_forgotten_below,
        abandon_seq: summary.counters.abandon_seq,
    };
    let building = dir.join(format!("building-{}.snap", unique()));
    let mut writer = SnapshotWriter::create(&building, &header)?;
    let mut written = 0u64;
    for item in view.iterator_cf(cf(db, CF_ORDERS), IteratorMode::Start) {
        let (_, value) = item?;
        let order: StoredOrder =
            decode(&value).map_err(|e| StoreError::Corrupt(format!("an order: {e}")))?;
        writer.record(&order)?;
        written += 1;
    }
    if written != header.orders {
        return Err(StoreError::Corrupt(format!(
            "the summary counts {} orders but {written} are stored",
            header.orders
        )));
    }
    for item in abandon_records() {
        let (_, value) = item?;
        let record: AbandonRecord =
            decode(&value).map_err(|e| StoreError::Corrupt(format!("an abandonment: {e}")))?;
        writer.record(&record)?;
    }
    let building = writer.finish()?;
    let name = format!("snap-{}.snap", unique());
    let path = dir.join(&name);
    std::fs::rename(&building, &path)?;
    sync_dir(dir)?;
    // openraft 0.10's metadata has no snapshot id: a snapshot is known by its last log id (and
    // here by its file name).
    let meta = SnapshotMeta {
        last_log_id: summary.last_applied,
        last_membership: summary.membership,
    };
    let current = CurrentSnapshot {
        meta: meta.clone(),
        file: name,
    };
    // With the lock held since before the view was taken, an install cannot have made a newer
    // snapshot current; the check is kept so that `current` can never move backwards.
    if !make_current(db, dir, &current)? {
        let _ = std::fs::remove_file(&path);
        let newer = current_snapshot(db)?
            .ok_or_else(|| StoreError::Corrupt("the current snapshot vanished".into()))?;
        return Ok((newer.meta, dir.join(newer.file)));
    }
    tracing::info!(last_log_id = ?meta.last_log_id, orders = header.orders, "built a snapshot");
    Ok((meta, path))
}
