//! RocksDB settings shared by the two services that store data: the catalog (stock and
//! reservations) and the order replicas (Raft log and state machine).

use rocksdb::{BlockBasedOptions, Options};

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
pub fn random_id_index() -> Options {
    let mut options = Options::default();
    options.set_write_buffer_size(4 << 20);
    options.set_memtable_prefix_bloom_ratio(0.1);
    options.set_memtable_whole_key_filtering(true);
    let mut table = BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    options.set_block_based_table_factory(&table);
    options
}
