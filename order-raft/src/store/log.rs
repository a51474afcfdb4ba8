//! `RocksLogStore`: the Raft log, vote and log pointers in RocksDB.
//!
//! Appends are written at once (so replication can read them as soon as `append` returns) but
//! without fsync; a dedicated [`LogSyncer`] thread then syncs the WAL and only then reports the
//! append's `IOFlushed` callback done. While one sync runs, later appends queue up and the next
//! sync covers them all: Raft never waits on more than one fsync per round, however many
//! entries arrive in it. openraft 0.10 replicates an entry to the followers as soon as `append`
//! returns, while this sync is still running; the leader's own copy counts towards the commit
//! quorum only once its callback has reported it flushed, and a follower acknowledges an append
//! only once its own callback has, so a committed (acknowledged) entry is on the disks of a
//! quorum either way. Callbacks are reported in the order of their appends (openraft ignores a
//! completion older than one already reported). The vote is written with a synced write before
//! `save_vote` returns, as Raft requires (a node must never vote twice in a term, even across a
//! crash).
//!
//! A purge never runs ahead of the state machine: openraft may ask to purge up to a snapshot
//! that the state machine is still installing (0.9 queued the purge right after the install
//! without waiting for it, and 0.10.0-alpha.37 still does: its follower's
//! `install_full_snapshot` hands the install to the state machine worker and queues the purge
//! right after, with no condition between them), so `purge` first waits until the state
//! machine has applied that far. Since
//! both share one WAL, the purge is then written after the state it depends on, and can never
//! survive a crash without it.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use openraft::OptionalSend;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch, WriteOptions};
use tokio::sync::watch;

use super::{CF_LOG, CF_RAFT, cf, decode, encode, index_key};
use crate::types::{Entry, LogId, TypeConfig, Vote};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

#[derive(Clone)]
pub struct RocksLogStore {
    db: Arc<DB>,
    syncer: Arc<LogSyncer>,
    /// The state machine's last applied log id.
    applied: watch::Receiver<Option<LogId>>,
    /// Whether `purge` waits for the state machine (always, but in openraft's storage suite,
    /// which exercises the log store without applying anything).
    purge_guard: bool,
}

/// How long a purge waits for the state machine to catch up before it skips the purge.
const PURGE_WAIT: Duration = Duration::from_secs(30);

impl RocksLogStore {
    pub(crate) fn new(db: Arc<DB>, applied: watch::Receiver<Option<LogId>>) -> Self {
        Self {
            syncer: Arc::new(LogSyncer::start(db.clone())),
            db,
            applied,
            purge_guard: true,
        }
    }

    /// For openraft's storage suite only: purges without waiting for a state machine that the
    /// suite never feeds.
    #[cfg(test)]
    pub(crate) fn without_purge_guard(mut self) -> Self {
        self.purge_guard = false;
        self
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, io::Error> {
        let bytes = self
            .db
            .get_pinned_cf(cf(&self.db, CF_RAFT), key)
            .map_err(io::Error::other)?;
        match bytes {
            Some(bytes) => Ok(Some(decode(&bytes).map_err(io::Error::other)?)),
            None => Ok(None),
        }
    }
}

/// The thread that syncs the WAL for appends that are written but not yet durable, shared by
/// every clone of the store.
struct LogSyncer {
    waiting: Option<mpsc::Sender<IOFlushed<TypeConfig>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LogSyncer {
    fn start(db: Arc<DB>) -> Self {
        let (waiting, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("raft-log-sync".into())
            .spawn(move || sync_appends(&db, queue))
            .map_err(|err| tracing::error!(%err, "cannot start the log sync thread"))
            .ok();
        Self {
            waiting: Some(waiting),
            thread,
        }
    }

    fn submit(&self, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error> {
        let sent = self
            .waiting
            .as_ref()
            .is_some_and(|waiting| waiting.send(callback).is_ok());
        if sent {
            Ok(())
        } else {
            Err(io::Error::other("the log sync thread is gone"))
        }
    }
}

impl Drop for LogSyncer {
    /// Closes the queue (the thread then ends) and waits for the thread, so that it never
    /// outlives the store: a RocksDB handle still being closed on another thread while the
    /// process exits makes RocksDB abort ("pthread lock: Invalid argument").
    fn drop(&mut self) {
        self.waiting.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The sync thread's loop.
fn sync_appends(db: &DB, queue: mpsc::Receiver<IOFlushed<TypeConfig>>) {
    while let Ok(first) = queue.recv() {
        let mut callbacks = vec![first];
        callbacks.extend(queue.try_iter());
        // One fsync makes every write issued before it durable, so it serves every append
        // that queued up while the previous one ran.
        let synced = db.flush_wal(true).map_err(|e| e.into_string());
        for callback in callbacks {
            callback.io_completed(synced.clone().map_err(io::Error::other));
        }
    }
}

impl RaftLogReader<TypeConfig> for RocksLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let from = index_key(start);
        let mut entries = Vec::new();
        for item in self.db.iterator_cf(
            cf(&self.db, CF_LOG),
            IteratorMode::From(&from, Direction::Forward),
        ) {
            let (_, value) = item.map_err(io::Error::other)?;
            let entry: Entry = decode(&value).map_err(io::Error::other)?;
            if !range.contains(&entry.log_id.index) {
                break;
            }
            entries.push(entry);
        }
        Ok(entries)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.get_meta(KEY_VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for RocksLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged: Option<LogId> = self.get_meta(KEY_LAST_PURGED)?;
        let last = match self
            .db
            .iterator_cf(cf(&self.db, CF_LOG), IteratorMode::End)
            .next()
        {
            Some(item) => {
                let (_, value) = item.map_err(io::Error::other)?;
                let entry: Entry = decode(&value).map_err(io::Error::other)?;
                Some(entry.log_id)
            }
            None => last_purged,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let bytes = encode(vote).map_err(io::Error::other)?;
        let mut opts = WriteOptions::default();
        // Raft: a vote must be on disk before it is sent. Synced, this write also makes every
        // earlier write durable (one WAL), keeping vote and log IO in order.
        opts.set_sync(true);
        self.db
            .put_cf_opt(cf(&self.db, CF_RAFT), KEY_VOTE, bytes, &opts)
            .map_err(io::Error::other)?;
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Not synced: it is only a hint that lets a restarted node re-apply committed entries
        // before it hears from a leader. Losing it is safe.
        let bytes = encode(&committed).map_err(io::Error::other)?;
        self.db
            .put_cf(cf(&self.db, CF_RAFT), KEY_COMMITTED, bytes)
            .map_err(io::Error::other)?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.get_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let cf_log = cf(&self.db, CF_LOG);
        let mut batch = WriteBatch::default();
        for entry in entries {
            let bytes = encode(&entry).map_err(io::Error::other)?;
            batch.put_cf(cf_log, index_key(entry.log_id.index), bytes);
        }
        // Readable from here on; durable once the syncer has run (it calls `callback`).
        self.db.write(batch).map_err(io::Error::other)?;
        self.syncer.submit(callback)
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        // Conflicting entries from an old term, after `last_log_id` (all of them for `None`).
        // Not synced on its own: an entry that survives a crash here is uncommitted and will be
        // truncated again, and the next synced append (one WAL) makes the deletion durable
        // before anything that depends on it. One range deletion: no hole in the log.
        let from = last_log_id.map_or(0, |id| id.index.saturating_add(1));
        self.db
            .delete_range_cf(cf(&self.db, CF_LOG), index_key(from), index_key(u64::MAX))
            .map_err(io::Error::other)?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        // Wait until the state machine has applied (written) everything to be purged: with
        // one WAL, whenever the purge survives a crash, so do the state-machine writes it
        // depends on. Pointer and deletion go in one atomic batch.
        let reached = !self.purge_guard
            || matches!(
                tokio::time::timeout(
                    PURGE_WAIT,
                    self.applied
                        .wait_for(|applied| applied.is_some_and(|a| a.index >= log_id.index)),
                )
                .await,
                Ok(Ok(_))
            );
        if !reached {
            // Keeping entries longer is always safe; purging past the state machine is not.
            tracing::warn!(%log_id, "the state machine has not applied this far; purge skipped");
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        let bytes = encode(&log_id).map_err(io::Error::other)?;
        batch.put_cf(cf(&self.db, CF_RAFT), KEY_LAST_PURGED, bytes);
        batch.delete_range_cf(
            cf(&self.db, CF_LOG),
            index_key(0),
            index_key(log_id.index.saturating_add(1)),
        );
        self.db.write(batch).map_err(io::Error::other)?;
        Ok(())
    }
}
