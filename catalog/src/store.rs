//! Durable stock: the toys and the outcome of every buy, in one RocksDB.
//!
//! Column families: `toys` (name → [`ToyState`]), `buys` (request id → [`BuyRecord`]) and
//! `meta` (the stock level the catalog was created with). Every change is one `WriteBatch`
//! written with `sync = true`: a buy is acknowledged only after its decrement and its
//! idempotency record are on disk together, so kill -9 (or power loss) can neither lose an
//! acknowledged decrement nor let a retried request id decrement twice.

use std::collections::BTreeMap;
use std::path::Path;

use api::catalog::BuyOutcome;
use rocksdb::{ColumnFamilyDescriptor, DB, Options, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};

use crate::error::CatalogError;
use crate::toys::INITIAL_TOYS;

const CF_TOYS: &str = "toys";
const CF_BUYS: &str = "buys";
const CF_META: &str = "meta";
const KEY_INITIAL_STOCK: &[u8] = b"initial_stock";

/// Every toy's state, by name.
pub type Toys = BTreeMap<String, ToyState>;

/// One toy's persisted state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToyState {
    pub price: f64,
    pub quantity: u32,
    /// Grows by one on every stock change; never reused, also across restarts.
    pub version: u64,
}

/// What a request id bought, kept so that a retry gets the same answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuyRecord {
    pub name: String,
    pub quantity: u32,
    pub outcome: BuyOutcome,
}

/// The catalog's RocksDB.
pub struct StockStore {
    db: DB,
    initial_stock: u32,
    /// False when this open created the database.
    existed: bool,
}

impl StockStore {
    /// Opens the store in `dir`, creating it with [`INITIAL_TOYS`] at `initial_stock` each when
    /// it does not exist yet. An existing store keeps the stock level it was created with.
    pub fn open(dir: &Path, initial_stock: u32) -> Result<Self, CatalogError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let cfs = [CF_TOYS, CF_BUYS, CF_META]
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&opts, dir, cfs)?;
        let mut store = Self {
            db,
            initial_stock,
            existed: true,
        };
        match store.db.get_cf(store.cf(CF_META)?, KEY_INITIAL_STOCK)? {
            Some(bytes) => store.initial_stock = decode(&bytes)?,
            None => store.create(initial_stock)?,
        }
        Ok(store)
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
        self.put_all(&mut batch, &toys, &[])?;
        self.write_synced(batch)?;
        tracing::info!(toys = toys.len(), initial_stock, "created a new catalog");
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
        for item in self
            .db
            .iterator_cf(self.cf(CF_TOYS)?, rocksdb::IteratorMode::Start)
        {
            let (key, value) = item?;
            let name = String::from_utf8(key.to_vec())
                .map_err(|_| CatalogError::Storage("a toy name on disk is not UTF-8".into()))?;
            toys.insert(name, decode(&value)?);
        }
        Ok(toys)
    }

    /// The recorded outcome of an earlier buy with this request id.
    pub fn find_buy(&self, request_id: &str) -> Result<Option<BuyRecord>, CatalogError> {
        match self
            .db
            .get_pinned_cf(self.cf(CF_BUYS)?, request_id.as_bytes())?
        {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Writes changed toys and new buy records atomically and durably.
    pub fn commit(&self, toys: &Toys, buys: &[(String, BuyRecord)]) -> Result<(), CatalogError> {
        if toys.is_empty() && buys.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        self.put_all(&mut batch, toys, buys)?;
        self.write_synced(batch)
    }

    fn put_all(
        &self,
        batch: &mut WriteBatch,
        toys: &Toys,
        buys: &[(String, BuyRecord)],
    ) -> Result<(), CatalogError> {
        let cf_toys = self.cf(CF_TOYS)?;
        for (name, state) in toys {
            batch.put_cf(cf_toys, name.as_bytes(), encode(state)?);
        }
        let cf_buys = self.cf(CF_BUYS)?;
        for (request_id, record) in buys {
            batch.put_cf(cf_buys, request_id.as_bytes(), encode(record)?);
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

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CatalogError> {
    serde_json::to_vec(value).map_err(|err| CatalogError::Storage(format!("cannot encode: {err}")))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CatalogError> {
    serde_json::from_slice(bytes)
        .map_err(|err| CatalogError::Storage(format!("corrupt record on disk: {err}")))
}
