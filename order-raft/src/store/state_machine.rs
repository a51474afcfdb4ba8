//! `RocksStateMachine`: the orders, kept in RocksDB and changed only by applying Raft entries.
//!
//! Applying an entry numbers its orders densely (0, 1, 2, …) in log order, skipping request
//! ids that already have an order, and extends the digest chain. The orders, the request-id
//! index and the [`Summary`] (last applied log id, membership, next number, digest) are written
//! in one batch, so a restart finds them consistent and neither re-applies nor skips an entry.
//!
//! Readers (order lookups, dedup checks, `/status`) go through an [`OrderReader`], which reads
//! RocksDB directly and never waits for the Raft state-machine task.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use parking_lot::RwLock;
use rocksdb::{DB, IteratorMode, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::StoreError;
use super::{CF_ORDERS, CF_REQUESTS, CF_SM_META, CF_SNAPSHOT, cf, decode, encode, index_key};
use crate::types::{
    BatchOutcome, Entry, LogId, NewOrder, OrderOutcome, SnapshotMeta, StorageError,
    StoredMembership, StoredOrder, TypeConfig,
};

const KEY_SUMMARY: &[u8] = b"summary";
const KEY_CURRENT: &[u8] = b"current";

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

/// What a snapshot carries: the orders (the request-id index is rebuilt from them).
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotPayload {
    orders: Vec<StoredOrder>,
    digest: [u8; 32],
}

/// The current snapshot as stored on disk.
#[derive(Debug, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
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

    pub fn summary(&self) -> Summary {
        self.summary.read().clone()
    }

    pub fn snapshots_installed(&self) -> u64 {
        self.snapshots_installed.load(Ordering::Relaxed)
    }
}

pub struct RocksStateMachine {
    reader: OrderReader,
}

impl RocksStateMachine {
    pub(crate) fn new(db: Arc<DB>) -> Result<Self, StorageError> {
        let summary = match db
            .get_pinned_cf(cf(&db, CF_SM_META), KEY_SUMMARY)
            .map_err(|e| StorageIOError::read_state_machine(&e))?
        {
            Some(bytes) => decode(&bytes).map_err(|e| StorageIOError::read_state_machine(&e))?,
            None => Summary::default(),
        };
        Ok(Self {
            reader: OrderReader {
                db,
                summary: Arc::new(RwLock::new(summary)),
                snapshots_installed: Arc::new(AtomicU64::new(0)),
            },
        })
    }

    /// A handle for reading orders while the state machine belongs to Raft.
    pub fn reader(&self) -> OrderReader {
        self.reader.clone()
    }

    fn db(&self) -> &DB {
        &self.reader.db
    }

    /// Numbers the orders of one entry. `fresh` holds request ids numbered earlier in the
    /// same `apply` call, which are not in RocksDB yet.
    fn apply_orders(
        &self,
        orders: &[NewOrder],
        summary: &mut Summary,
        fresh: &mut HashMap<String, StoredOrder>,
        batch: &mut WriteBatch,
    ) -> Result<Vec<OrderOutcome>, StorageError> {
        let mut outcomes = Vec::with_capacity(orders.len());
        for order in orders {
            let earlier = match fresh.get(&order.request_id) {
                Some(stored) => Some(stored.clone()),
                None => self
                    .reader
                    .by_request(&order.request_id)
                    .map_err(|e| StorageIOError::read_state_machine(&e))?,
            };
            if let Some(earlier) = earlier {
                let same = earlier.name == order.name && earlier.quantity == order.quantity;
                outcomes.push(if same {
                    OrderOutcome::Duplicate(earlier.number)
                } else {
                    OrderOutcome::Conflict(earlier.number)
                });
                continue;
            }
            let stored = StoredOrder {
                number: summary.next_number,
                request_id: order.request_id.clone(),
                name: order.name.clone(),
                quantity: order.quantity,
            };
            put_order(self.db(), batch, &stored)
                .map_err(|e| StorageIOError::write_state_machine(&e))?;
            summary.digest = chain_digest(
                &summary.digest,
                stored.number,
                &stored.name,
                stored.quantity,
            );
            summary.next_number += 1;
            outcomes.push(OrderOutcome::Placed(stored.number));
            fresh.insert(stored.request_id.clone(), stored);
        }
        Ok(outcomes)
    }
}

fn put_order(
    db: &DB,
    batch: &mut WriteBatch,
    order: &StoredOrder,
) -> Result<(), bincode::error::EncodeError> {
    batch.put_cf(cf(db, CF_ORDERS), index_key(order.number), encode(order)?);
    batch.put_cf(
        cf(db, CF_REQUESTS),
        order.request_id.as_bytes(),
        index_key(order.number),
    );
    Ok(())
}

impl RaftStateMachine<TypeConfig> for RocksStateMachine {
    type SnapshotBuilder = OrderSnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let summary = self.reader.summary();
        Ok((summary.last_applied, summary.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<BatchOutcome>, StorageError>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut summary = self.reader.summary();
        let mut batch = WriteBatch::default();
        let mut fresh = HashMap::new();
        let mut results = Vec::new();
        for entry in entries {
            summary.last_applied = Some(entry.log_id);
            let outcome = match entry.payload {
                EntryPayload::Blank => BatchOutcome::default(),
                EntryPayload::Normal(ref order_batch) => BatchOutcome {
                    outcomes: self.apply_orders(
                        &order_batch.orders,
                        &mut summary,
                        &mut fresh,
                        &mut batch,
                    )?,
                },
                EntryPayload::Membership(ref membership) => {
                    summary.membership =
                        StoredMembership::new(Some(entry.log_id), membership.clone());
                    BatchOutcome::default()
                }
            };
            results.push(outcome);
        }
        let bytes = encode(&summary).map_err(|e| StorageIOError::write_state_machine(&e))?;
        batch.put_cf(cf(self.db(), CF_SM_META), KEY_SUMMARY, bytes);
        // Not synced: every applied entry is in the (synced) Raft log, and RocksDB recovers a
        // prefix of the shared WAL, so after a crash the state machine is at some earlier
        // applied id and openraft re-applies the rest from the log.
        self.db()
            .write(batch)
            .map_err(|e| StorageIOError::write_state_machine(&e))?;
        *self.reader.summary.write() = summary;
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        OrderSnapshotBuilder {
            db: self.reader.db.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let signature = Some(meta.signature());
        let data = snapshot.into_inner();
        let payload: SnapshotPayload =
            decode(&data).map_err(|e| StorageIOError::read_snapshot(signature.clone(), &e))?;
        // Check the snapshot before replacing anything: dense numbers, and a digest that
        // matches the orders it carries.
        let mut digest = [0u8; 32];
        for (i, order) in payload.orders.iter().enumerate() {
            if order.number != i as u64 {
                let err = std::io::Error::other(format!(
                    "snapshot order {i} has number {}",
                    order.number
                ));
                return Err(StorageIOError::read_snapshot(signature, &err).into());
            }
            digest = chain_digest(&digest, order.number, &order.name, order.quantity);
        }
        if digest != payload.digest {
            let err = std::io::Error::other("snapshot digest does not match its orders");
            return Err(StorageIOError::read_snapshot(signature, &err).into());
        }

        let db = self.db();
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf(db, CF_ORDERS), index_key(0), index_key(u64::MAX));
        // Request ids are visible ASCII (< 0x7f): every one sorts below 0xff.
        batch.delete_range_cf(cf(db, CF_REQUESTS), b"".as_slice(), b"\xff".as_slice());
        for order in &payload.orders {
            put_order(db, &mut batch, order)
                .map_err(|e| StorageIOError::write_snapshot(signature.clone(), &e))?;
        }
        let summary = Summary {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            next_number: payload.orders.len() as u64,
            digest,
        };
        let write_err = |e: &dyn std::fmt::Display| {
            StorageIOError::write_snapshot(signature.clone(), &std::io::Error::other(e.to_string()))
        };
        batch.put_cf(
            cf(db, CF_SM_META),
            KEY_SUMMARY,
            encode(&summary).map_err(|e| write_err(&e))?,
        );
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        batch.put_cf(
            cf(db, CF_SNAPSHOT),
            KEY_CURRENT,
            encode(&stored).map_err(|e| write_err(&e))?,
        );
        let mut opts = WriteOptions::default();
        // Synced: openraft purges the log up to the snapshot right after this returns, and
        // nothing else could rebuild this state.
        opts.set_sync(true);
        db.write_opt(batch, &opts).map_err(|e| write_err(&e))?;
        *self.reader.summary.write() = summary;
        self.reader
            .snapshots_installed
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            last_log_id = ?meta.last_log_id,
            orders = payload.orders.len(),
            "installed a snapshot from the leader"
        );
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let bytes = self
            .db()
            .get_pinned_cf(cf(self.db(), CF_SNAPSHOT), KEY_CURRENT)
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let stored: StoredSnapshot =
            decode(&bytes).map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(Some(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        }))
    }
}

/// Builds a snapshot from a consistent RocksDB view while the state machine keeps applying.
pub struct OrderSnapshotBuilder {
    db: Arc<DB>,
}

impl RaftSnapshotBuilder<TypeConfig> for OrderSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || build_snapshot(&db))
            .await
            .map_err(|e| StorageIOError::read_state_machine(&e))?
    }
}

fn build_snapshot(db: &DB) -> Result<Snapshot<TypeConfig>, StorageError> {
    let view = db.snapshot();
    let summary: Summary = match view
        .get_cf(cf(db, CF_SM_META), KEY_SUMMARY)
        .map_err(|e| StorageIOError::read_state_machine(&e))?
    {
        Some(bytes) => decode(&bytes).map_err(|e| StorageIOError::read_state_machine(&e))?,
        None => Summary::default(),
    };
    let mut orders = Vec::with_capacity(summary.next_number as usize);
    for item in view.iterator_cf(cf(db, CF_ORDERS), IteratorMode::Start) {
        let (_, value) = item.map_err(|e| StorageIOError::read_state_machine(&e))?;
        orders.push(
            decode::<StoredOrder>(&value).map_err(|e| StorageIOError::read_state_machine(&e))?,
        );
    }
    let data = encode(&SnapshotPayload {
        orders,
        digest: summary.digest,
    })
    .map_err(|e| StorageIOError::read_state_machine(&e))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let snapshot_id = match summary.last_applied {
        Some(last) => format!("{}-{}-{stamp}", last.leader_id, last.index),
        None => format!("empty-{stamp}"),
    };
    let meta = SnapshotMeta {
        last_log_id: summary.last_applied,
        last_membership: summary.membership,
        snapshot_id,
    };
    let stored = StoredSnapshot {
        meta: meta.clone(),
        data,
    };
    let bytes =
        encode(&stored).map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
    // Not synced: a lost snapshot is rebuilt from the state machine, and the log purge that
    // relies on it is written later into the same WAL.
    db.put_cf(cf(db, CF_SNAPSHOT), KEY_CURRENT, bytes)
        .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
    tracing::info!(last_log_id = ?meta.last_log_id, orders = summary.next_number, "built a snapshot");
    Ok(Snapshot {
        meta,
        snapshot: Box::new(Cursor::new(stored.data)),
    })
}
