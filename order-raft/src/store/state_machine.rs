//! `RocksStateMachine`: the orders, kept in RocksDB and changed only by applying Raft entries.
//!
//! Applying an entry numbers its orders densely (0, 1, 2, …) in log order and decides, for every
//! reservation, its one outcome: an order entry places its order unless the request id already
//! has one (a duplicate) or the log abandoned that reservation first; an abandonment releases
//! the reservation unless its order committed first (then it is confirmed). Whichever of order
//! and abandonment comes first in the log wins, on every replica alike.
//!
//! The orders, the request-id index, the abandonments and the [`Summary`] (last applied log id,
//! membership, next number, digest, clock) are written in one batch per `apply`, so a restart
//! finds them consistent and neither re-applies nor skips an entry.
//!
//! **Retention.** A request id is remembered for `retention` after its order (or abandonment)
//! by the state machine's clock, which is the latest leader timestamp in the log, so every
//! replica prunes the same entries. A retry within the window is deduplicated; one after it is
//! a new order.
//!
//! **Snapshots** are files written and read as streams ([`super::snapshot`]): building one
//! reads a consistent RocksDB view while applying goes on; installing one verifies it first
//! (dense numbers, digest), then replaces the state in bounded batches under an on-disk marker,
//! so a crash mid-install is finished on the next start. Builds and installs are serialized,
//! and the current snapshot never moves backwards.
//!
//! Readers (order lookups, dedup checks, `/status`) go through an [`OrderReader`], which reads
//! RocksDB directly and never waits for the Raft state-machine task.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use parking_lot::{Mutex, RwLock};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::snapshot::{Header, SnapshotFile, SnapshotReader, SnapshotWriter, sync_dir};
use super::{
    CF_ABANDON_LOG, CF_ABANDONED, CF_ORDERS, CF_REQUESTS, CF_SM_META, CF_SNAPSHOT, StoreError, cf,
    decode, encode, index_key,
};
use crate::types::{
    AbandonRecord, Decided, Entry, LogId, NewOrder, OrderOutcome, SnapshotMeta, StorageError,
    StoredMembership, StoredOrder, TypeConfig, Verdict,
};
use api::catalog::ReservationId;

const KEY_SUMMARY: &[u8] = b"summary";
const KEY_INSTALLING: &[u8] = b"installing";
const KEY_CURRENT: &[u8] = b"current";

/// Most request ids or abandonments pruned per `apply`: retention never makes one apply slow.
const PRUNE_STEP: u64 = 1024;

/// Orders written per RocksDB batch while installing a snapshot.
const INSTALL_BATCH: usize = 4096;

/// Orders (and other log items) applied between two yields to the runtime: about a
/// millisecond of work.
const APPLY_YIELD_EVERY: usize = 256;

/// The state machine's bookkeeping, persisted atomically with the orders it describes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    /// Number the next new order gets; also the number of orders.
    pub next_number: u64,
    /// SHA-256 chain over all orders in number order: `d(n+1) = SHA256(d(n) ‖ order n)`,
    /// starting from 32 zero bytes. Equal digests mean equal order histories.
    pub digest: [u8; 32],
    /// The latest leader timestamp applied (Unix ms).
    pub clock_ms: u64,
    /// Orders numbered below this no longer have a request-id entry.
    pub requests_pruned_below: u64,
    /// Sequence number the next abandonment record gets.
    pub abandon_seq: u64,
    /// Abandonment records below this sequence number were pruned.
    pub abandons_pruned_below: u64,
}

/// The digest after `order`, given the digest before it. Covers exactly what
/// `GET /orders/{n}` shows (number, name, quantity), so anyone can recompute it.
pub fn chain_digest(previous: &[u8; 32], number: u64, name: &str, quantity: u32) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(number.to_be_bytes());
    hasher.update((name.len() as u64).to_be_bytes());
    hasher.update(name.as_bytes());
    hasher.update(quantity.to_be_bytes());
    hasher.finalize().into()
}

/// What the state machine knows about a request id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestState {
    /// Its order, if one was placed (and is still remembered).
    pub placed: Option<StoredOrder>,
    /// Its attempts up to this one were abandoned.
    pub abandoned_through: Option<u32>,
}

impl RequestState {
    /// The attempt a new try at this request id reserves as.
    pub fn next_attempt(&self) -> u32 {
        self.abandoned_through.map_or(0, |a| a.saturating_add(1))
    }
}

/// The current snapshot as recorded in RocksDB: its metadata and its file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CurrentSnapshot {
    meta: SnapshotMeta,
    file: String,
}

/// Read access to the orders, shared by request handlers.
#[derive(Clone)]
pub struct OrderReader {
    db: Arc<DB>,
    summary: Arc<RwLock<Summary>>,
    snapshots_installed: Arc<AtomicU64>,
}

impl OrderReader {
    pub fn order(&self, number: u64) -> Result<Option<StoredOrder>, StoreError> {
        match self
            .db
            .get_pinned_cf(cf(&self.db, CF_ORDERS), index_key(number))?
        {
            Some(bytes) => decode(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("order {number}: {e}"))),
            None => Ok(None),
        }
    }

    /// Orders `from..from + limit` (fewer at the end), in number order.
    pub fn orders(&self, from: u64, limit: usize) -> Result<Vec<StoredOrder>, StoreError> {
        let start = index_key(from);
        let mut found = Vec::new();
        for item in self.db.iterator_cf(
            cf(&self.db, CF_ORDERS),
            IteratorMode::From(&start, Direction::Forward),
        ) {
            if found.len() >= limit {
                break;
            }
            let (_, value) = item?;
            found.push(decode(&value).map_err(|e| StoreError::Corrupt(format!("an order: {e}")))?);
        }
        Ok(found)
    }

    /// The order placed with this request id, if any.
    pub fn by_request(&self, request_id: &str) -> Result<Option<StoredOrder>, StoreError> {
        match self
            .db
            .get_pinned_cf(cf(&self.db, CF_REQUESTS), request_id.as_bytes())?
        {
            Some(bytes) => match super::index_from_key(&bytes) {
                Some(number) => self.order(number),
                None => Err(StoreError::Corrupt(format!(
                    "the request index entry of {request_id:?}"
                ))),
            },
            None => Ok(None),
        }
    }

    /// Everything known about a request id: its order and its abandoned attempts.
    pub fn request(&self, request_id: &str) -> Result<RequestState, StoreError> {
        let placed = self.by_request(request_id)?;
        let abandoned_through = match self
            .db
            .get_pinned_cf(cf(&self.db, CF_ABANDONED), request_id.as_bytes())?
        {
            Some(bytes) => {
                let (_, through): (u64, u32) = decode(&bytes).map_err(|e| {
                    StoreError::Corrupt(format!("abandonment of {request_id:?}: {e}"))
                })?;
                Some(through)
            }
            None => None,
        };
        Ok(RequestState {
            placed,
            abandoned_through,
        })
    }

    pub fn summary(&self) -> Summary {
        self.summary.read().clone()
    }

    pub fn snapshots_installed(&self) -> u64 {
        self.snapshots_installed.load(Ordering::Relaxed)
    }
}

pub struct RocksStateMachine {
    reader: OrderReader,
    /// Where snapshot files live.
    dir: PathBuf,
    /// Serializes snapshot builds and installs (see the module doc).
    snapshot_lock: Arc<Mutex<()>>,
    /// How long request ids and abandonments are remembered.
    retention: Duration,
    /// The last applied log id, for the log store: it purges nothing past it.
    applied: watch::Sender<Option<LogId>>,
    /// Fault injection (tests and chaos runs): abort in the middle of the next install.
    crash_mid_install: bool,
}

impl RocksStateMachine {
    /// Loads the state machine, finishing a snapshot install a crash interrupted.
    pub(crate) fn open(
        db: Arc<DB>,
        dir: PathBuf,
        retention: Duration,
        crash_mid_install: bool,
    ) -> Result<(Self, watch::Receiver<Option<LogId>>), StoreError> {
        if let Some(bytes) = db.get_pinned_cf(cf(&db, CF_SM_META), KEY_INSTALLING)? {
            let current: CurrentSnapshot = decode(&bytes)
                .map_err(|e| StoreError::Corrupt(format!("the install marker: {e}")))?;
            tracing::warn!(snapshot = %current.meta.snapshot_id, "finishing a snapshot install a crash interrupted");
            apply_snapshot_file(&db, &dir, &current, false)?;
        }
        let summary: Summary = match db.get_pinned_cf(cf(&db, CF_SM_META), KEY_SUMMARY)? {
            Some(bytes) => {
                decode(&bytes).map_err(|e| StoreError::Corrupt(format!("the summary: {e}")))?
            }
            None => Summary::default(),
        };
        remove_stray_files(&db, &dir)?;
        let (applied, applied_rx) = watch::channel(summary.last_applied);
        let sm = Self {
            reader: OrderReader {
                db,
                summary: Arc::new(RwLock::new(summary)),
                snapshots_installed: Arc::new(AtomicU64::new(0)),
            },
            dir,
            snapshot_lock: Arc::default(),
            retention,
            applied,
            crash_mid_install,
        };
        Ok((sm, applied_rx))
    }

    /// A handle for reading orders while the state machine belongs to Raft.
    pub fn reader(&self) -> OrderReader {
        self.reader.clone()
    }

    fn db(&self) -> &DB {
        &self.reader.db
    }
}

/// The state of one `apply` call: what it changed that is not in RocksDB yet.
struct Applying<'a> {
    db: &'a DB,
    reader: &'a OrderReader,
    summary: Summary,
    batch: WriteBatch,
    /// Orders placed in this call, by request id and by number.
    placed: HashMap<String, StoredOrder>,
    placed_numbers: HashMap<u64, String>,
    /// Abandonments recorded in this call: request id → (seq, through).
    abandoned: HashMap<String, (u64, u32)>,
}

impl Applying<'_> {
    fn placed(&self, request_id: &str) -> Result<Option<StoredOrder>, StorageError> {
        match self.placed.get(request_id) {
            Some(order) => Ok(Some(order.clone())),
            None => self
                .reader
                .by_request(request_id)
                .map_err(|e| StorageIOError::read_state_machine(&e).into()),
        }
    }

    fn abandoned(&self, request_id: &str) -> Result<Option<(u64, u32)>, StorageError> {
        if let Some(entry) = self.abandoned.get(request_id) {
            return Ok(Some(*entry));
        }
        let bytes = self
            .db
            .get_pinned_cf(cf(self.db, CF_ABANDONED), request_id.as_bytes())
            .map_err(|e| StorageIOError::read_state_machine(&e))?;
        match bytes {
            Some(bytes) => Ok(Some(
                decode(&bytes).map_err(|e| StorageIOError::read_state_machine(&e))?,
            )),
            None => Ok(None),
        }
    }

    fn order(&mut self, order: &NewOrder) -> Result<OrderOutcome, StorageError> {
        if let Some(earlier) = self.placed(&order.request_id)? {
            let same = earlier.name == order.name && earlier.quantity == order.quantity;
            return Ok(if same {
                OrderOutcome::Duplicate(earlier.number)
            } else {
                OrderOutcome::Conflict(earlier.number)
            });
        }
        if self
            .abandoned(&order.request_id)?
            .is_some_and(|(_, through)| through >= order.attempt)
        {
            return Ok(OrderOutcome::Abandoned);
        }
        let stored = StoredOrder {
            number: self.summary.next_number,
            request_id: order.request_id.clone(),
            attempt: order.attempt,
            name: order.name.clone(),
            quantity: order.quantity,
            placed_ms: self.summary.clock_ms,
        };
        put_order(self.db, &mut self.batch, &stored, true)
            .map_err(|e| StorageIOError::write_state_machine(&e))?;
        self.summary.digest = chain_digest(
            &self.summary.digest,
            stored.number,
            &stored.name,
            stored.quantity,
        );
        self.summary.next_number += 1;
        self.placed_numbers
            .insert(stored.number, stored.request_id.clone());
        self.placed
            .insert(stored.request_id.clone(), stored.clone());
        Ok(OrderOutcome::Placed(stored.number))
    }

    fn abandon(&mut self, id: &ReservationId) -> Result<Verdict, StorageError> {
        if let Some(order) = self.placed(&id.request_id)? {
            if order.attempt == id.attempt {
                return Ok(Verdict::Confirm);
            }
            // The request id's order holds another reservation: this one is unused.
            return Ok(Verdict::Release);
        }
        let earlier = self.abandoned(&id.request_id)?;
        if earlier.is_some_and(|(_, through)| through >= id.attempt) {
            return Ok(Verdict::Release);
        }
        let write = |e: &dyn std::fmt::Display| StorageIOError::write_state_machine(&io_error(e));
        if let Some((old_seq, _)) = earlier {
            self.batch
                .delete_cf(cf(self.db, CF_ABANDON_LOG), index_key(old_seq));
        }
        let record = AbandonRecord {
            seq: self.summary.abandon_seq,
            request_id: id.request_id.clone(),
            through: id.attempt,
            stamp_ms: self.summary.clock_ms,
        };
        put_abandon(self.db, &mut self.batch, &record).map_err(|e| write(&e))?;
        self.summary.abandon_seq += 1;
        self.abandoned
            .insert(id.request_id.clone(), (record.seq, record.through));
        Ok(Verdict::Release)
    }

    /// Forgets request ids and abandonments older than the retention, a bounded number per
    /// call.
    fn prune(&mut self, retention: Duration) -> Result<(), StorageError> {
        let read = |e: &dyn std::fmt::Display| StorageIOError::read_state_machine(&io_error(e));
        let cutoff = self
            .summary
            .clock_ms
            .saturating_sub(retention.as_millis() as u64);
        for _ in 0..PRUNE_STEP {
            let number = self.summary.requests_pruned_below;
            if number >= self.summary.next_number {
                break;
            }
            let order = match self.placed_numbers.get(&number) {
                Some(request_id) => self.placed.get(request_id).cloned(),
                None => self.reader.order(number).map_err(|e| read(&e))?,
            };
            let Some(order) = order else {
                return Err(
                    read(&StoreError::Corrupt(format!("order {number} is missing"))).into(),
                );
            };
            if order.placed_ms >= cutoff {
                break;
            }
            self.batch
                .delete_cf(cf(self.db, CF_REQUESTS), order.request_id.as_bytes());
            self.summary.requests_pruned_below += 1;
        }
        for _ in 0..PRUNE_STEP {
            let seq = self.summary.abandons_pruned_below;
            if seq >= self.summary.abandon_seq {
                break;
            }
            let record: Option<AbandonRecord> = match self
                .db
                .get_pinned_cf(cf(self.db, CF_ABANDON_LOG), index_key(seq))
                .map_err(|e| read(&e))?
            {
                Some(bytes) => Some(decode(&bytes).map_err(|e| read(&e))?),
                // Superseded by a later abandonment of the same request id, or written in
                // this very call (then it is too young to prune).
                None if self.abandoned.values().any(|(s, _)| *s == seq) => break,
                None => None,
            };
            if let Some(record) = record {
                if record.stamp_ms >= cutoff {
                    break;
                }
                self.batch
                    .delete_cf(cf(self.db, CF_ABANDON_LOG), index_key(seq));
                if self
                    .abandoned(&record.request_id)?
                    .is_some_and(|(current, _)| current == seq)
                {
                    self.batch
                        .delete_cf(cf(self.db, CF_ABANDONED), record.request_id.as_bytes());
                    self.abandoned.remove(&record.request_id);
                }
            }
            self.summary.abandons_pruned_below += 1;
        }
        Ok(())
    }
}

fn put_order(
    db: &DB,
    batch: &mut WriteBatch,
    order: &StoredOrder,
    with_request: bool,
) -> Result<(), bincode::error::EncodeError> {
    batch.put_cf(cf(db, CF_ORDERS), index_key(order.number), encode(order)?);
    if with_request {
        batch.put_cf(
            cf(db, CF_REQUESTS),
            order.request_id.as_bytes(),
            index_key(order.number),
        );
    }
    Ok(())
}

fn put_abandon(
    db: &DB,
    batch: &mut WriteBatch,
    record: &AbandonRecord,
) -> Result<(), bincode::error::EncodeError> {
    batch.put_cf(
        cf(db, CF_ABANDON_LOG),
        index_key(record.seq),
        encode(record)?,
    );
    batch.put_cf(
        cf(db, CF_ABANDONED),
        record.request_id.as_bytes(),
        encode(&(record.seq, record.through))?,
    );
    Ok(())
}

impl RaftStateMachine<TypeConfig> for RocksStateMachine {
    type SnapshotBuilder = OrderSnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let summary = self.reader.summary();
        Ok((summary.last_applied, summary.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Decided>, StorageError>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut applying = Applying {
            db: &self.reader.db,
            reader: &self.reader,
            summary: self.reader.summary(),
            batch: WriteBatch::default(),
            placed: HashMap::new(),
            placed_numbers: HashMap::new(),
            abandoned: HashMap::new(),
        };
        let mut results = Vec::new();
        let mut since_yield = 0;
        for entry in entries {
            applying.summary.last_applied = Some(entry.log_id);
            let decided = match entry.payload {
                EntryPayload::Blank => Decided::default(),
                EntryPayload::Normal(ref proposal) => {
                    applying.summary.clock_ms = applying.summary.clock_ms.max(proposal.stamp_ms);
                    let mut decided = Decided::default();
                    for order in &proposal.orders {
                        decided.orders.push(applying.order(order)?);
                    }
                    for abandon in &proposal.abandons {
                        decided.abandons.push(applying.abandon(abandon)?);
                    }
                    decided
                }
                EntryPayload::Membership(ref membership) => {
                    applying.summary.membership =
                        StoredMembership::new(Some(entry.log_id), membership.clone());
                    Decided::default()
                }
            };
            // A replica runs on one thread (`api::server::service_runtime`): a long catch-up
            // must let the Raft RPCs and timers in between, or the replica would look dead
            // while it applies.
            since_yield += 1 + decided.orders.len() + decided.abandons.len();
            if since_yield >= APPLY_YIELD_EVERY {
                since_yield = 0;
                tokio::task::yield_now().await;
            }
            results.push(decided);
        }
        applying.prune(self.retention)?;
        let Applying {
            summary, mut batch, ..
        } = applying;
        let bytes = encode(&summary).map_err(|e| StorageIOError::write_state_machine(&e))?;
        batch.put_cf(cf(self.db(), CF_SM_META), KEY_SUMMARY, bytes);
        // Not synced: every applied entry is in the (synced) Raft log, and RocksDB recovers a
        // prefix of the shared WAL, so after a crash the state machine is at some earlier
        // applied id and openraft re-applies the rest from the log. The log store never purges
        // past what was applied (and so written to the WAL) here.
        self.db()
            .write(batch)
            .map_err(|e| StorageIOError::write_state_machine(&e))?;
        let last_applied = summary.last_applied;
        *self.reader.summary.write() = summary;
        self.applied.send_replace(last_applied);
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        OrderSnapshotBuilder {
            db: self.reader.db.clone(),
            dir: self.dir.clone(),
            lock: self.snapshot_lock.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotFile>, StorageError> {
        let path = self.dir.join(format!("receiving-{}.snap", unique()));
        let file = SnapshotFile::create(path)
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        mut snapshot: Box<SnapshotFile>,
    ) -> Result<(), StorageError> {
        let signature = Some(meta.signature());
        let err = |e: &dyn std::fmt::Display| {
            StorageIOError::write_snapshot(signature.clone(), &io_error(e))
        };
        snapshot.sync().await.map_err(|e| err(&e))?;
        let (db, dir, lock) = (
            self.reader.db.clone(),
            self.dir.clone(),
            self.snapshot_lock.clone(),
        );
        let (meta, received) = (meta.clone(), snapshot.path().to_path_buf());
        drop(snapshot);
        let crash = self.crash_mid_install;
        let summary = tokio::task::spawn_blocking(move || {
            let _serialized = lock.lock();
            install(&db, &dir, &meta, &received, crash)
        })
        .await
        .map_err(|e| err(&e))?
        .map_err(|e| err(&e))?;
        let last_applied = summary.last_applied;
        tracing::info!(
            last_log_id = ?last_applied,
            orders = summary.next_number,
            "installed a snapshot from the leader"
        );
        *self.reader.summary.write() = summary;
        self.applied.send_replace(last_applied);
        self.reader
            .snapshots_installed
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let read = |e: &dyn std::fmt::Display| StorageIOError::read_snapshot(None, &io_error(e));
        let Some(current) = current_snapshot(self.db()).map_err(|e| read(&e))? else {
            return Ok(None);
        };
        let file = SnapshotFile::open(self.dir.join(&current.file))
            .await
            .map_err(|e| read(&e))?;
        Ok(Some(Snapshot {
            meta: current.meta,
            snapshot: Box::new(file),
        }))
    }
}

/// An error of any kind as the `io::Error` openraft's `StorageIOError` wraps.
fn io_error(e: &dyn std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// A name no other snapshot file of this process has.
fn unique() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn current_snapshot(db: &DB) -> Result<Option<CurrentSnapshot>, StoreError> {
    match db.get_pinned_cf(cf(db, CF_SNAPSHOT), KEY_CURRENT)? {
        Some(bytes) => Ok(Some(decode(&bytes).map_err(|e| {
            StoreError::Corrupt(format!("the current snapshot record: {e}"))
        })?)),
        None => Ok(None),
    }
}

/// Makes `path` the current snapshot file `name` unless the current one is newer; returns
/// whether it did. The caller holds the snapshot lock.
fn make_current(db: &DB, dir: &Path, current: &CurrentSnapshot) -> Result<bool, StoreError> {
    let previous = current_snapshot(db)?;
    if previous
        .as_ref()
        .is_some_and(|p| p.meta.last_log_id > current.meta.last_log_id)
    {
        return Ok(false);
    }
    let mut opts = WriteOptions::default();
    // Synced: the log purge that relies on this snapshot must never survive without it.
    opts.set_sync(true);
    let bytes = encode(current).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    db.put_cf_opt(cf(db, CF_SNAPSHOT), KEY_CURRENT, bytes, &opts)?;
    if let Some(previous) = previous
        && previous.file != current.file
    {
        let _ = std::fs::remove_file(dir.join(previous.file));
    }
    Ok(true)
}

/// Deletes snapshot files that are neither current nor being installed: half-built or
/// half-received ones a crash left behind.
fn remove_stray_files(db: &DB, dir: &Path) -> Result<(), StoreError> {
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
fn install(
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
    let marker = encode(&current).map_err(|e| StoreError::Corrupt(e.to_string()))?;
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
fn apply_snapshot_file(
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
    let encode_err = |e: bincode::error::EncodeError| StoreError::Corrupt(e.to_string());
    let mut in_batch = 0;
    for _ in 0..header.orders {
        let order = reader.order().map_err(|e| corrupt(e.to_string()))?;
        let remembered = order.number >= header.requests_pruned_below;
        put_order(db, &mut batch, &order, remembered).map_err(encode_err)?;
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
    let mut abandons_pruned_below = header.abandon_seq;
    for _ in 0..header.abandons {
        let record = reader.abandon().map_err(|e| corrupt(e.to_string()))?;
        abandons_pruned_below = abandons_pruned_below.min(record.seq);
        put_abandon(db, &mut batch, &record).map_err(encode_err)?;
    }
    let summary = Summary {
        last_applied: current.meta.last_log_id,
        membership: current.meta.last_membership.clone(),
        next_number: header.orders,
        digest: header.digest,
        clock_ms: header.clock_ms,
        requests_pruned_below: header.requests_pruned_below,
        abandon_seq: header.abandon_seq,
        abandons_pruned_below,
    };
    batch.put_cf(
        cf(db, CF_SM_META),
        KEY_SUMMARY,
        encode(&summary).map_err(encode_err)?,
    );
    batch.delete_cf(cf(db, CF_SM_META), KEY_INSTALLING);
    let mut opts = WriteOptions::default();
    // Synced: once openraft is told the install is done it may purge the log behind it.
    opts.set_sync(true);
    db.write_opt(batch, &opts)?;
    make_current(db, dir, current)?;
    Ok(summary)
}

/// Builds a snapshot from a consistent RocksDB view while the state machine keeps applying.
pub struct OrderSnapshotBuilder {
    db: Arc<DB>,
    dir: PathBuf,
    lock: Arc<Mutex<()>>,
}

impl RaftSnapshotBuilder<TypeConfig> for OrderSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (db, dir, lock) = (self.db.clone(), self.dir.clone(), self.lock.clone());
        let read = |e: &dyn std::fmt::Display| StorageIOError::read_state_machine(&io_error(e));
        let (meta, path) = tokio::task::spawn_blocking(move || {
            let _serialized = lock.lock();
            build(&db, &dir)
        })
        .await
        .map_err(|e| read(&e))?
        .map_err(|e| read(&e))?;
        let file = SnapshotFile::open(path).await.map_err(|e| read(&e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }
}

/// Writes the state machine as of now to a snapshot file and makes it current (blocking; the
/// caller holds the snapshot lock, so no install runs meanwhile).
fn build(db: &DB, dir: &Path) -> Result<(SnapshotMeta, PathBuf), StoreError> {
    let view = db.snapshot();
    let summary: Summary = match view.get_cf(cf(db, CF_SM_META), KEY_SUMMARY)? {
        Some(bytes) => decode(&bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        None => Summary::default(),
    };
    let from = index_key(summary.abandons_pruned_below);
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
        orders: summary.next_number,
        abandons,
        digest: summary.digest,
        clock_ms: summary.clock_ms,
        requests_pruned_below: summary.requests_pruned_below,
        abandon_seq: summary.abandon_seq,
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
    let snapshot_id = match summary.last_applied {
        Some(last) => format!("{}-{}-{}", last.leader_id, last.index, unique()),
        None => format!("empty-{}", unique()),
    };
    let meta = SnapshotMeta {
        last_log_id: summary.last_applied,
        last_membership: summary.membership,
        snapshot_id,
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

/// What tests need to reach inside the state machine.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// Leaves `sm` as a crash in the middle of installing the snapshot at `file` would: the
    /// file moved into place, the install marker written, part of the old state deleted, the
    /// new state not written.
    pub(crate) fn interrupt_install(
        sm: &RocksStateMachine,
        meta: &SnapshotMeta,
        file: &Path,
    ) -> Result<(), StoreError> {
        let name = format!("snap-{}.snap", unique());
        std::fs::copy(file, sm.dir.join(&name))?;
        let current = CurrentSnapshot {
            meta: meta.clone(),
            file: name,
        };
        let db = sm.db();
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        let marker = encode(&current).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        db.put_cf_opt(cf(db, CF_SM_META), KEY_INSTALLING, marker, &opts)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf(db, CF_ORDERS), index_key(0), index_key(u64::MAX));
        db.write_opt(batch, &opts)?;
        Ok(())
    }
}
