//! Durable stock: the toys and every reservation, in one RocksDB.
//!
//! Column families:
//! - `toys`: name → [`ToyState`] (price, available quantity, version, and the toy's accounts:
//!   units restocked in all and units held by pending reservations);
//! - `reservations`: reservation id → [`ReservationRecord`] (what it reserved, its answer, and
//!   whether it is pending, confirmed, released or was refused);
//! - `pending`: (made at, id) → nothing: pending reservations, oldest first, for the sweep;
//! - `settled`: (settled at, id) → nothing: finished records, oldest first, for retention (a
//!   refusal is filed earlier than it happened, so that it goes after its short window:
//!   `ledger::Retention::refusal_finished_at`);
//! - `frontends`: URL → nothing: every front-end that was granted a cache lease (see
//!   `crate::cache_lease`), so that a restarted catalog knows whom to reset;
//! - `meta`: the stock level the catalog was created with, its incarnation, where forgetting
//!   stopped, and whether `frontends` is complete.
//!
//! Every change is one `WriteBatch`; one that answers a reservation is written with
//! `sync = true`: a reservation is acknowledged only after its decrement and its record are on
//! disk together, so kill -9 (or power loss) can neither lose an acknowledged reservation nor
//! let a retried id reserve twice (see [`StockStore::commit`] for the others).
//!
//! Versions: settlements and restocks are not synced, so a crash can lose one together with
//! the version it gave its toy, after front-ends and clients saw that version. So that the
//! number is never shown again for another quantity, every open increments the store's
//! *incarnation* (synced before anything else happens) and every version a run gives out lies
//! at or above [`version_floor`] of its incarnation, above every version of earlier runs (see
//! [`next_version`]).
//!
//! Length: about 615 lines of code and 40 of tests. The column families, their keys and the
//! one batch that writes them all are kept in one file on purpose: whether a commit keeps the
//! accounts and the indexes consistent can only be read with all of them in view.

use std::collections::BTreeMap;
use std::path::Path;

use api::catalog::{PendingReservation, ReservationId, ReserveOutcome};
use rocksdb::{DB, Direction, IteratorMode, ReadOptions, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};

use crate::error::CatalogError;
use crate::toys::INITIAL_TOYS;

const CF_TOYS: &str = "toys";
const CF_RESERVATIONS: &str = "reservations";
const CF_PENDING: &str = "pending";
const CF_SETTLED: &str = "settled";
const CF_FRONTENDS: &str = "frontends";
const CF_META: &str = "meta";
const KEY_INITIAL_STOCK: &[u8] = b"initial_stock";
const KEY_INCARNATION: &[u8] = b"incarnation";
/// Present once `frontends` lists every front-end that may hold a lease of this catalog.
const KEY_FRONTENDS_TRACKED: &[u8] = b"frontends_tracked";
/// The `settled` key forgetting resumes from (every key below it is deleted).
const KEY_FORGET_FROM: &[u8] = b"forget_from";

/// Bits of a version below its incarnation: a run of the catalog may change one toy 2^40
/// times (four years at 8,000 changes a second) before its versions reach the next run's.
pub const VERSION_BITS: u32 = 40;

/// The lowest version a change may get in `incarnation` (1 for a new store: its versions
/// count up from the toys' first version, 1).
pub fn version_floor(incarnation: u64) -> u64 {
    incarnation.saturating_sub(1) << VERSION_BITS
}

/// The version of a toy's next change: one above its current version, and at least the floor
/// of this run, so that it is above every version an earlier run gave out, including one a
/// crash lost.
pub fn next_version(current: u64, floor: u64) -> u64 {
    current.saturating_add(1).max(floor)
}

/// Every toy's state, by name.
pub type Toys = BTreeMap<String, ToyState>;

/// One toy's persisted state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToyState {
    pub price: f64,
    /// Units available now.
    pub quantity: u32,
    /// Grows on every stock change (by one within a run of the catalog, to the run's floor at
    /// its first change in a run); never reused, also across crashes: see [`next_version`].
    pub version: u64,
    /// Units added by restocks, in all.
    pub restocked: u64,
    /// Units held by pending reservations.
    pub pending: u64,
}

/// Where a reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReservationState {
    /// Stock taken; the Raft log has not decided yet.
    Pending,
    /// Its order committed: the stock stays sold.
    Confirmed,
    /// Its order was abandoned: the stock came back (or, for a release of a reservation never
    /// made, none was taken and none ever will be under this id).
    Released,
    /// The reservation was refused (out of stock); its answer is kept for retries.
    Refused,
}

/// What a reservation id did, kept so that a retry gets the same answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationRecord {
    pub name: String,
    pub quantity: u32,
    pub outcome: ReserveOutcome,
    pub state: ReservationState,
    /// Unix milliseconds when it was made.
    pub made_ms: u64,
}

/// One batch of changes, written atomically.
#[derive(Default)]
pub struct Changes {
    pub toys: Toys,
    pub records: Vec<(ReservationId, ReservationRecord)>,
    /// Pending index entries to add: (made at, id).
    pub pending_added: Vec<(u64, ReservationId)>,
    /// Pending index entries to remove: (made at, id).
    pub pending_removed: Vec<(u64, ReservationId)>,
    /// Settled index entries to add: (settled at, id).
    pub settled_added: Vec<(u64, ReservationId)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.toys.is_empty()
            && self.records.is_empty()
            && self.pending_added.is_empty()
            && self.pending_removed.is_empty()
            && self.settled_added.is_empty()
    }
}

/// The catalog's RocksDB.
pub struct StockStore {
    db: DB,
    initial_stock: u32,
    /// False when this open created the database.
    existed: bool,
    /// Incremented and synced by every open.
    incarnation: u64,
    /// Whether `frontends` lists every front-end that may hold a lease (false for a store
    /// written before front-ends were recorded, until [`Self::mark_frontends_tracked`]).
    frontends_tracked: std::sync::atomic::AtomicBool,
    /// Where the next pass of forgetting starts in `settled`: every key below it is already
    /// deleted, so a pass seeks past their tombstones instead of walking them.
    forget_from: parking_lot::Mutex<Vec<u8>>,
    /// The `pending` column family in memory, kept in step by `commit`. Listing pending
    /// reservations from RocksDB would walk over the deletion of every reservation ever settled
    /// (until compaction), which made the leader's sweep slower the longer the catalog ran.
    pending: parking_lot::Mutex<std::collections::BTreeSet<(u64, ReservationId)>>,
}

impl StockStore {
    /// Opens the store in `dir`, creating it with [`INITIAL_TOYS`] at `initial_stock` each when
    /// it does not exist yet. An existing store keeps the stock level it was created with.
    pub fn open(dir: &Path, initial_stock: u32) -> Result<Self, CatalogError> {
        let db = api::rocks::open(
            dir,
            &[
                CF_TOYS,
                CF_RESERVATIONS,
                CF_PENDING,
                CF_SETTLED,
                CF_FRONTENDS,
                CF_META,
            ],
            // Keyed by random reservation ids, looked up by every reservation.
            &[CF_RESERVATIONS],
        )?;
        let mut store = Self {
            db,
            initial_stock,
            existed: true,
            incarnation: 0,
            frontends_tracked: std::sync::atomic::AtomicBool::new(false),
            forget_from: parking_lot::Mutex::default(),
            pending: parking_lot::Mutex::default(),
        };
        let mut pending = std::collections::BTreeSet::new();
        for item in store
            .db
            .iterator_cf(store.cf(CF_PENDING)?, IteratorMode::Start)
        {
            let (key, _) = item?;
            pending.insert(parse_time_key(&key)?);
        }
        *store.pending.lock() = pending;
        match store.db.get_cf(store.cf(CF_META)?, KEY_INITIAL_STOCK)? {
            Some(bytes) => store.initial_stock = decode(&bytes)?,
            None => store.create(initial_stock)?,
        }
        let previous: Option<u64> = match store.db.get_cf(store.cf(CF_META)?, KEY_INCARNATION)? {
            Some(bytes) => Some(decode(&bytes)?),
            None => None,
        };
        store.incarnation = next_incarnation(previous, store.existed)?;
        let meta = store.cf(CF_META)?;
        let tracked = !store.existed || store.db.get_cf(meta, KEY_FRONTENDS_TRACKED)?.is_some();
        store
            .frontends_tracked
            .store(tracked, std::sync::atomic::Ordering::SeqCst);
        if let Some(bytes) = store.db.get_cf(meta, KEY_FORGET_FROM)? {
            *store.forget_from.lock() = bytes;
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(meta, KEY_INCARNATION, encode(&store.incarnation)?);
        if !store.existed {
            batch.put_cf(meta, KEY_FRONTENDS_TRACKED, []);
        }
        // Synced before any version of this run is given out: see the module's doc.
        store.write_synced(batch)?;
        Ok(store)
    }

    /// This run's incarnation (1 for the run that created the store).
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The lowest version a change may get in this run.
    pub fn version_floor(&self) -> u64 {
        version_floor(self.incarnation)
    }

    /// Every front-end that was granted a lease and not forgotten since.
    pub fn known_frontends(&self) -> Result<Vec<String>, CatalogError> {
        let mut urls = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_FRONTENDS)?, IteratorMode::Start)
        {
            let (key, _) = item?;
            match String::from_utf8(key.to_vec()) {
                Ok(url) => urls.push(url),
                Err(_) => tracing::warn!("a front-end URL on disk is not UTF-8; skipped"),
            }
        }
        Ok(urls)
    }

    /// Records a front-end durably: it is about to be granted a lease, which a restarted
    /// catalog must know of.
    pub fn remember_frontend(&self, url: &str) -> Result<(), CatalogError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_FRONTENDS)?, url.as_bytes(), []);
        self.write_synced(batch)
    }

    /// Forgets a front-end that holds no lease of this catalog or of an earlier run. Not
    /// synced: one that comes back after a crash costs one wait of a lease at the next start.
    pub fn forget_frontend(&self, url: &str) -> Result<(), CatalogError> {
        self.db.delete_cf(self.cf(CF_FRONTENDS)?, url.as_bytes())?;
        Ok(())
    }

    /// Whether [`Self::known_frontends`] lists every front-end that may hold a lease: false
    /// for a store written before front-ends were recorded.
    pub fn frontends_tracked(&self) -> bool {
        self.frontends_tracked
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Records that every front-end that may hold a lease is now known (call once the leases
    /// granted before front-ends were recorded have run out).
    pub fn mark_frontends_tracked(&self) -> Result<(), CatalogError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META)?, KEY_FRONTENDS_TRACKED, []);
        self.write_synced(batch)?;
        self.frontends_tracked
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// RocksDB's estimate of the number of reservation records (for the records gauge).
    pub fn reservation_records(&self) -> Result<u64, CatalogError> {
        Ok(self
            .db
            .property_int_value_cf(self.cf(CF_RESERVATIONS)?, "rocksdb.estimate-num-keys")?
            .unwrap_or(0))
    }

    /// Number of pending reservations.
    pub fn pending_count(&self) -> usize {
        self.pending.lock().len()
    }

    fn create(&mut self, initial_stock: u32) -> Result<(), CatalogError> {
        self.existed = false;
        let toys: Toys = INITIAL_TOYS
            .iter()
            .map(|&(name, price)| {
                let state = ToyState {
                    price,
                    quantity: initial_stock,
                    version: 1,
                    restocked: 0,
                    pending: 0,
                };
                (name.to_string(), state)
            })
            .collect();
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.cf(CF_META)?,
            KEY_INITIAL_STOCK,
            encode(&initial_stock)?,
        );
        let changes = Changes {
            toys,
            ..Changes::default()
        };
        self.put_all(&mut batch, &changes)?;
        self.write_synced(batch)?;
        tracing::info!(
            toys = changes.toys.len(),
            initial_stock,
            "created a new catalog"
        );
        Ok(())
    }

    /// The stock every toy started with, and the level a restock refills to.
    pub fn initial_stock(&self) -> u32 {
        self.initial_stock
    }

    /// Whether the data directory held a catalog before this process opened it.
    pub fn existed(&self) -> bool {
        self.existed
    }

    /// Every toy, by name.
    pub fn load(&self) -> Result<Toys, CatalogError> {
        let mut toys = BTreeMap::new();
        for item in self.db.iterator_cf(self.cf(CF_TOYS)?, IteratorMode::Start) {
            let (key, value) = item?;
            let name = String::from_utf8(key.to_vec())
                .map_err(|_| CatalogError::Storage("a toy name on disk is not UTF-8".into()))?;
            toys.insert(name, decode(&value)?);
        }
        Ok(toys)
    }

    /// The record of a reservation id, if it was used.
    pub fn find(&self, id: &ReservationId) -> Result<Option<ReservationRecord>, CatalogError> {
        match self
            .db
            .get_pinned_cf(self.cf(CF_RESERVATIONS)?, reservation_key(id))?
        {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Up to `limit` reservation records with ids above `after` (from the first when
    /// `None`), in id order: the checkers' listing of every record held.
    pub fn records_after(
        &self,
        after: Option<&ReservationId>,
        limit: usize,
    ) -> Result<Vec<(ReservationId, ReservationRecord)>, CatalogError> {
        let from = after.map(reservation_key).unwrap_or_default();
        let mut found = Vec::new();
        for item in self.db.iterator_cf(
            self.cf(CF_RESERVATIONS)?,
            IteratorMode::From(&from, Direction::Forward),
        ) {
            if found.len() >= limit {
                break;
            }
            let (key, value) = item?;
            if after.is_some() && *key == *from {
                continue;
            }
            let id = parse_reservation_key(&key).ok_or_else(|| {
                CatalogError::Storage("a reservation key on disk is corrupt".into())
            })?;
            found.push((id, decode(&value)?));
        }
        Ok(found)
    }

    /// The finish time (Unix ms) of the last record forgotten: every record that finished
    /// before it is gone. `None` when none was ever forgotten.
    pub fn forgotten_through(&self) -> Option<u64> {
        let from = self.forget_from.lock();
        let at = from.get(..8)?;
        Some(u64::from_be_bytes(at.try_into().ok()?))
    }

    /// Pending reservations made after `made_after` and at or before `made_by` (Unix ms),
    /// oldest first, at most `limit`.
    pub fn pending(
        &self,
        made_after: u64,
        made_by: u64,
        now: u64,
        limit: usize,
    ) -> Result<Vec<PendingReservation>, CatalogError> {
        let first = (
            made_after.saturating_add(1),
            ReservationId {
                request_id: String::new(),
                attempt: 0,
            },
        );
        let oldest: Vec<(u64, ReservationId)> = self
            .pending
            .lock()
            .range(first..)
            .take_while(|(made, _)| *made <= made_by)
            .take(limit)
            .cloned()
            .collect();
        let mut found = Vec::with_capacity(oldest.len());
        for (made, id) in oldest {
            if let Some(record) = self.find(&id)? {
                found.push(PendingReservation {
                    id,
                    name: record.name,
                    quantity: record.quantity,
                    age_ms: now.saturating_sub(made),
                });
            }
        }
        Ok(found)
    }

    /// Finished records (settled or refused) that finished at or before `cutoff` (Unix ms),
    /// oldest first, at most `limit`: what retention may delete.
    ///
    /// Reads from where the last [`Self::forget`] stopped, and stops before the first key past
    /// `cutoff` without reading it: it never walks the tombstones of records already forgotten
    /// (RocksDB keeps them until compaction, and walking them made each pass slower than the
    /// last). A record that finished before that point by the wall clock (the clock stepped
    /// back further than the retention) is never forgotten: a leak, not a wrong answer.
    pub fn expired(
        &self,
        cutoff: u64,
        limit: usize,
    ) -> Result<Vec<(u64, ReservationId)>, CatalogError> {
        let from = self.forget_from.lock().clone();
        let mut options = ReadOptions::default();
        options.set_iterate_upper_bound(cutoff.saturating_add(1).to_be_bytes().to_vec());
        let mut found = Vec::new();
        for item in self.db.iterator_cf_opt(
            self.cf(CF_SETTLED)?,
            options,
            IteratorMode::From(&from, Direction::Forward),
        ) {
            if found.len() >= limit {
                break;
            }
            let (key, _) = item?;
            let (at, id) = parse_time_key(&key)?;
            if at > cutoff {
                break;
            }
            found.push((at, id));
        }
        Ok(found)
    }

    /// Deletes finished records and their index entries: `expired` must be what
    /// [`Self::expired`] returned (oldest first, from where forgetting stopped). Forgetting
    /// resumes after the last one.
    pub fn forget(&self, expired: &[(u64, ReservationId)]) -> Result<(), CatalogError> {
        let Some((last_at, last_id)) = expired.last() else {
            return Ok(());
        };
        let mut batch = WriteBatch::default();
        for (at, id) in expired {
            batch.delete_cf(self.cf(CF_RESERVATIONS)?, reservation_key(id));
            batch.delete_cf(self.cf(CF_SETTLED)?, time_key(*at, id));
        }
        // The smallest key above the last one forgotten.
        let mut resume = time_key(*last_at, last_id);
        resume.push(0);
        batch.put_cf(self.cf(CF_META)?, KEY_FORGET_FROM, &resume);
        // Not synced: a forgotten record that reappears after a crash is forgotten again (the
        // resume point is in the same batch, so it never skips one).
        self.db.write(batch)?;
        *self.forget_from.lock() = resume;
        Ok(())
    }

    /// Writes one batch of changes atomically; with `sync`, durably before it returns.
    ///
    /// A batch that answers a reservation is synced: the reservation is acknowledged once this
    /// returns. Settlements and restocks alone are not: one lost to a crash is redone (the
    /// reservation is pending again, and the leader settles it again through the log), and
    /// RocksDB recovers a prefix of its write-ahead log, so no synced reservation written later
    /// can survive without them.
    pub fn commit(&self, changes: &Changes, sync: bool) -> Result<(), CatalogError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        self.put_all(&mut batch, changes)?;
        if sync {
            self.write_synced(batch)?;
        } else {
            self.db.write(batch)?;
        }
        let mut pending = self.pending.lock();
        for entry in &changes.pending_removed {
            pending.remove(entry);
        }
        pending.extend(changes.pending_added.iter().cloned());
        Ok(())
    }

    fn put_all(&self, batch: &mut WriteBatch, changes: &Changes) -> Result<(), CatalogError> {
        let cf_toys = self.cf(CF_TOYS)?;
        for (name, state) in &changes.toys {
            batch.put_cf(cf_toys, name.as_bytes(), encode(state)?);
        }
        let cf_records = self.cf(CF_RESERVATIONS)?;
        for (id, record) in &changes.records {
            batch.put_cf(cf_records, reservation_key(id), encode(record)?);
        }
        let cf_pending = self.cf(CF_PENDING)?;
        for (made, id) in &changes.pending_added {
            batch.put_cf(cf_pending, time_key(*made, id), []);
        }
        for (made, id) in &changes.pending_removed {
            batch.delete_cf(cf_pending, time_key(*made, id));
        }
        let cf_settled = self.cf(CF_SETTLED)?;
        for (at, id) in &changes.settled_added {
            batch.put_cf(cf_settled, time_key(*at, id), []);
        }
        Ok(())
    }

    fn write_synced(&self, batch: WriteBatch) -> Result<(), CatalogError> {
        let mut opts = WriteOptions::default();
        // The caller acknowledges the change as soon as this returns: it must be on disk.
        opts.set_sync(true);
        self.db.write_opt(batch, &opts)?;
        Ok(())
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, CatalogError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| CatalogError::Storage(format!("column family {name} is missing")))
    }
}

/// The incarnation of a run: one more than the last run's. A store written before
/// incarnations were recorded may have lost versions of its own runs, so its first recorded
/// run is 2 (above every version it gave out: those are far below [`VERSION_BITS`]).
fn next_incarnation(previous: Option<u64>, existed: bool) -> Result<u64, CatalogError> {
    let next = match previous {
        Some(previous) => previous.saturating_add(1),
        None if existed => 2,
        None => 1,
    };
    if next >= 1 << (u64::BITS - VERSION_BITS) {
        return Err(CatalogError::Storage(format!(
            "incarnation {next} leaves no room for versions"
        )));
    }
    Ok(next)
}

/// The request id's bytes, a 0 byte (request ids are visible ASCII, so it cannot occur in
/// one), and the attempt, big-endian.
fn reservation_key(id: &ReservationId) -> Vec<u8> {
    let mut key = Vec::with_capacity(id.request_id.len() + 5);
    key.extend_from_slice(id.request_id.as_bytes());
    key.push(0);
    key.extend_from_slice(&id.attempt.to_be_bytes());
    key
}

fn parse_reservation_key(key: &[u8]) -> Option<ReservationId> {
    let (request_id, attempt) = key.split_at_checked(key.len().checked_sub(5)?)?;
    let (zero, attempt) = attempt.split_first()?;
    if *zero != 0 {
        return None;
    }
    Some(ReservationId {
        request_id: String::from_utf8(request_id.to_vec()).ok()?,
        attempt: u32::from_be_bytes(attempt.try_into().ok()?),
    })
}

/// A time (big-endian, so keys sort by time) followed by a reservation key.
fn time_key(at: u64, id: &ReservationId) -> Vec<u8> {
    let mut key = at.to_be_bytes().to_vec();
    key.extend_from_slice(&reservation_key(id));
    key
}

fn parse_time_key(key: &[u8]) -> Result<(u64, ReservationId), CatalogError> {
    let corrupt = || CatalogError::Storage("a reservation index key on disk is corrupt".into());
    let (at, rest) = key.split_at_checked(8).ok_or_else(corrupt)?;
    let at = u64::from_be_bytes(at.try_into().map_err(|_| corrupt())?);
    Ok((at, parse_reservation_key(rest).ok_or_else(corrupt)?))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CatalogError> {
    serde_json::to_vec(value).map_err(|err| CatalogError::Storage(format!("cannot encode: {err}")))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CatalogError> {
    serde_json::from_slice(bytes)
        .map_err(|err| CatalogError::Storage(format!("corrupt record on disk: {err}")))
}

#[cfg(test)]
mod key_tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_by_time() {
        let id = ReservationId {
            request_id: "order-7".into(),
            attempt: 3,
        };
        assert_eq!(
            parse_reservation_key(&reservation_key(&id)),
            Some(id.clone())
        );
        assert_eq!(
            parse_time_key(&time_key(42, &id)).unwrap(),
            (42, id.clone())
        );
        assert!(time_key(41, &id) < time_key(42, &id));
        assert!(parse_reservation_key(b"no").is_none());
        assert!(parse_time_key(b"short").is_err());
    }

    #[test]
    fn every_version_of_a_run_is_above_every_version_of_the_runs_before() {
        assert_eq!(next_incarnation(None, false).unwrap(), 1);
        assert_eq!(next_incarnation(None, true).unwrap(), 2);
        assert_eq!(next_incarnation(Some(7), true).unwrap(), 8);
        assert!(next_incarnation(Some((1 << 24) - 1), true).is_err());
        // A new store counts up from 1.
        assert_eq!(next_version(1, version_floor(1)), 2);
        // The next run's first change jumps above anything the first run could give out.
        let last_of_run_one = (1 << VERSION_BITS) - 1;
        assert_eq!(next_version(5, version_floor(2)), 1 << VERSION_BITS);
        assert!(next_version(5, version_floor(2)) > last_of_run_one);
        assert_eq!(
            next_version(1 << VERSION_BITS, version_floor(2)),
            (1 << VERSION_BITS) + 1
        );
    }
}
