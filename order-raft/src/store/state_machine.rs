//! `RocksStateMachine`: the orders, kept in RocksDB and changed only by applying Raft entries.
//! This file is openraft's `RaftStateMachine` and little else; the parts live beside it:
//!
//! - [`super::rules`]: what an order or an abandonment decides (pure functions). Applying an
//!   entry numbers its orders densely (0, 1, 2, …) in log order and decides, for every
//!   reservation, its one outcome; whichever of order and abandonment comes first in the log
//!   wins, on every replica alike. Retention is by the log's clock, at each entry.
//! - [`super::apply`]: one `apply` call's reads and its one `WriteBatch` (orders, request-id
//!   index, abandonments, and the [`Summary`]), so a restart finds them consistent and neither
//!   re-applies nor skips an entry.
//! - [`super::snapshot`]: building, installing and serving snapshots.
//! - [`super::reader`]: the [`OrderReader`] request handlers use.
//!
//! Since openraft 0.10 the state machine no longer receives a snapshot stream itself: the
//! network layer receives the file (through a [`SnapshotInbox`]) and hands it to
//! `Raft::install_full_snapshot`, which calls `install_snapshot` here.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt};
use openraft::OptionalSend;
use openraft::storage::{ApplyResponder, EntryResponder, RaftStateMachine};
use parking_lot::{Mutex, RwLock};
use rocksdb::DB;
use tokio::sync::watch;

use super::apply::Applying;
use super::reader::OrderReader;
use super::rules::Rules;
use super::snapshot::{
    CurrentSnapshot, KEY_INSTALLING, OrderSnapshotBuilder, apply_snapshot_file, install, io_error,
    open_current, remove_stray_files, unique,
};
use super::snapshot_file::SnapshotFile;
use super::summary::{KEY_SUMMARY, Summary};
use super::{CF_SM_META, StoreError, cf, decode};
use crate::types::{Decided, Entry, LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};

/// Orders (and other log items) applied between two yields to the runtime: about a
/// millisecond of work.
const APPLY_YIELD_EVERY: usize = 256;

pub struct RocksStateMachine {
    reader: OrderReader,
    /// Where snapshot files live.
    dir: PathBuf,
    /// Serializes snapshot builds, installs and opening the current snapshot.
    snapshot_lock: Arc<Mutex<()>>,
    /// Where the network layer receives snapshots from the leader.
    inbox: SnapshotInbox,
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
            tracing::warn!(snapshot = %current.file, "finishing a snapshot install a crash interrupted");
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
                rules: Rules { retention },
                snapshots_installed: Arc::new(AtomicU64::new(0)),
            },
            dir: dir.clone(),
            snapshot_lock: Arc::default(),
            inbox: SnapshotInbox {
                dir,
                receiving: Arc::default(),
            },
            applied,
            crash_mid_install,
        };
        Ok((sm, applied_rx))
    }

    /// A handle for reading orders while the state machine belongs to Raft.
    pub fn reader(&self) -> OrderReader {
        self.reader.clone()
    }

    /// Where the network layer receives snapshots for this state machine (see
    /// [`SnapshotInbox`]); taken before the state machine is handed to Raft.
    pub fn inbox(&self) -> SnapshotInbox {
        self.inbox.clone()
    }

    /// Applies `entries` outside Raft (tests, benches) and returns what each decided: the same
    /// path as [`RaftStateMachine::apply`], without responders.
    pub async fn apply_entries(&mut self, entries: Vec<Entry>) -> io::Result<Vec<Decided>> {
        let entries = futures::stream::iter(entries.into_iter().map(|entry| Ok((entry, None))));
        let applied = self.apply_stream(entries).await?;
        Ok(applied.into_iter().map(|(_, decided)| decided).collect())
    }

    /// Applies every entry of `entries`, writes them in one batch, publishes the new summary, and
    /// returns each entry's responder (if any) with its result, to answer once all is written.
    async fn apply_stream<S>(
        &mut self,
        mut entries: S,
    ) -> io::Result<Vec<(Option<ApplyResponder<TypeConfig>>, Decided)>>
    where
        S: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut applying = Applying::new(&self.reader);
        let mut results = Vec::new();
        let mut since_yield = 0;
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let decided = applying.entry(&entry).map_err(|e| io_error(&e))?;
            // A replica may run on one thread (`api::server::service_runtime`): a long catch-up
            // must let the Raft RPCs and timers in between, or the replica would look dead
            // while it applies.
            since_yield += 1 + decided.orders.len() + decided.abandons.len();
            if since_yield >= APPLY_YIELD_EVERY {
                since_yield = 0;
                tokio::task::yield_now().await;
            }
            results.push((responder, decided));
        }
        let summary = applying.finish().map_err(|e| io_error(&e))?;
        self.publish(summary);
        Ok(results)
    }

    /// Makes `summary` what readers and the log store see.
    fn publish(&self, summary: Summary) {
        let last_applied = summary.last_applied;
        *self.reader.summary.write() = summary;
        self.applied.send_replace(last_applied);
    }
}

impl RaftStateMachine<TypeConfig> for RocksStateMachine {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = OrderSnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let summary = self.reader.summary();
        Ok((summary.last_applied, summary.membership))
    }

    async fn apply<S>(&mut self, entries: S) -> Result<(), io::Error>
    where
        S: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        // Answered only once the whole batch is written and published, as in 0.9 (where the
        // results were returned at the end): a client never hears of an order a read on this
        // replica cannot see yet.
        for (responder, decided) in self.apply_stream(entries).await? {
            if let Some(responder) = responder {
                responder.send(decided);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        OrderSnapshotBuilder {
            db: self.reader.db.clone(),
            dir: self.dir.clone(),
            lock: self.snapshot_lock.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        mut snapshot: SnapshotFile,
    ) -> Result<(), io::Error> {
        let err = |e: &dyn std::fmt::Display| {
            io::Error::other(format!("installing the snapshot {meta}: {e}"))
        };
        snapshot.sync().await.map_err(|e| err(&e))?;
        let (db, dir, lock) = (
            self.reader.db.clone(),
            self.dir.clone(),
            self.snapshot_lock.clone(),
        );
        let (meta, received) = (meta.clone(), snapshot.path().to_path_buf());
        drop(snapshot);
        self.inbox.received(&received);
        let crash = self.crash_mid_install;
        let summary = tokio::task::spawn_blocking(move || {
            let _serialized = lock.lock();
            install(&db, &dir, &meta, &received, crash)
        })
        .await
        .map_err(|e| err(&e))?
        .map_err(|e| err(&e))?;
        tracing::info!(
            last_log_id = ?summary.last_applied,
            orders = summary.counters.next_number,
            "installed a snapshot from the leader"
        );
        self.publish(summary);
        self.reader
            .snapshots_installed
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let read = |e: &dyn std::fmt::Display| io_error(&format!("the current snapshot: {e}"));
        let (db, dir, lock) = (
            self.reader.db.clone(),
            self.dir.clone(),
            self.snapshot_lock.clone(),
        );
        let current = tokio::task::spawn_blocking(move || open_current(&db, &dir, &lock))
            .await
            .map_err(|e| read(&e))?
            .map_err(|e| read(&e))?;
        Ok(current.map(|(meta, file)| Snapshot {
            meta,
            snapshot: file,
        }))
    }
}

/// Where snapshots from the leader are received: a file in the snapshot directory, until
/// `install_snapshot` takes it. openraft (0.9's chunked install, and the network layer's own
/// stream since 0.10) may give up a stream without telling the state machine (a new snapshot id
/// starts, a vote is refused, the snapshot is not newer, the leader stops sending); the next
/// stream deletes the file left behind. Shared by the state machine and the network layer.
#[derive(Clone)]
pub struct SnapshotInbox {
    dir: PathBuf,
    /// The file being received into, if any.
    receiving: Arc<Mutex<Option<PathBuf>>>,
}

impl SnapshotInbox {
    /// A new file to receive a snapshot into; deletes the file of a stream given up before.
    pub async fn begin(&self) -> io::Result<SnapshotFile> {
        let abandoned = self.receiving.lock().take();
        if let Some(abandoned) = abandoned {
            let _ = tokio::fs::remove_file(abandoned).await;
        }
        let path = self.dir.join(format!("receiving-{}.snap", unique()));
        let file = SnapshotFile::create(path.clone()).await?;
        *self.receiving.lock() = Some(path);
        Ok(file)
    }

    /// The file at `path` is being installed: it is no longer the inbox's to delete.
    fn received(&self, path: &std::path::Path) {
        let mut receiving = self.receiving.lock();
        if receiving.as_deref() == Some(path) {
            *receiving = None;
        }
    }
}

/// What tests need to reach inside the state machine.
#[cfg(test)]
pub(crate) mod tests_support {
    use std::path::Path;

    use rocksdb::{WriteBatch, WriteOptions};

    use super::super::{CF_ORDERS, encode, index_key};
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
        let db = &*sm.reader.db;
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        db.put_cf_opt(cf(db, CF_SM_META), KEY_INSTALLING, encode(&current)?, &opts)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf(db, CF_ORDERS), index_key(0), index_key(u64::MAX));
        db.write_opt(batch, &opts)?;
        Ok(())
    }
}
