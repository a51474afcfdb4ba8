//! How the two services that store data open RocksDB: the catalog (stock and reservations)
//! and the order replicas (Raft log and state machine), with the same settings.

use std::path::Path;

use rocksdb::{BlockBasedOptions, ColumnFamilyDescriptor, DB, Options};

/// Opens (or creates) the database in `dir` with the column families `all`, creating any that
/// are missing; those in `random_id` get [`random_id_index`], the others RocksDB's defaults.
pub fn open(dir: &Path, all: &[&str], random_id: &[&str]) -> Result<DB, rocksdb::Error> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let cfs = all.iter().map(|&name| {
        let options = if random_id.contains(&name) {
            random_id_index()
        } else {
            Options::default()
        };
        ColumnFamilyDescriptor::new(name, options)
    });
    DB::open_cf_descriptors(&opts, dir, cfs)
}

/// Options for a column family keyed by random ids (request ids, reservation ids) that is
/// mostly asked for ids it does not hold: every new order looks its request id up before it
/// is written.
///
/// With RocksDB's defaults each such id costs two walks down a skip list of up to 64 MiB of
/// randomly ordered keys, one to prove it absent and one to insert it, each a chain of cache
/// misses. `perf` at 64 connections put the lookup alone at 15 % of the replicas' CPU, and
/// orders/s fell by a fifth over the first 300 000 orders as the memtable filled. Two
/// settings:
/// - a bloom filter over whole keys, in the memtable and in every table file, answers most
///   "absent" without walking;
/// - a 4 MiB memtable keeps the skip list small enough to stay in cache; older ids go to
///   table files, where the bloom filter answers for them.
///
/// The filter alone only moved the cost to the insert, which then walked the list cold.
fn random_id_index() -> Options {
    let mut options = Options::default();
    options.set_write_buffer_size(4 << 20);
    options.set_memtable_prefix_bloom_ratio(0.1);
    options.set_memtable_whole_key_filtering(true);
    let mut table = BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    options.set_block_based_table_factory(&table);
    options
}
