//! Snapshot benchmark: builds a snapshot of a state machine holding N orders, installs it into
//! a fresh replica, and reports the time and the peak memory (RSS high-water mark, reset before
//! each step) of each. A benchmark, not a test: nothing here asserts a timing.
//!
//! `cargo bench -p order-raft --bench snapshot -- [ORDERS]` (default 1 000 000).

use std::time::{Duration, Instant};

use openraft::storage::RaftStateMachine;
use openraft::vote::RaftLeaderId;
use openraft::{EntryPayload, RaftSnapshotBuilder};
use order_raft::store;
use order_raft::types::{CommittedLeaderId, Entry, LogId, NewOrder, Proposal};

fn main() {
    let orders: u64 = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run(orders));
}

async fn run(orders: u64) {
    let retention = Duration::from_secs(86_400);
    let source_dir = tempfile::tempdir().expect("a temporary directory");
    let (_log, mut source) = store::open(source_dir.path(), retention, false).expect("opens");
    let started = Instant::now();
    let per_entry = 1_000;
    let mut entries = Vec::new();
    for chunk in 0..orders.div_ceil(per_entry) {
        let from = chunk * per_entry;
        let batch = (from..(from + per_entry).min(orders))
            .map(|i| NewOrder {
                request_id: format!("bench-{i:012}"),
                attempt: 0,
                name: "Rubik's Cube".into(),
                quantity: 1 + (i % 5) as u32,
            })
            .collect();
        entries.push(Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), chunk + 1),
            payload: EntryPayload::Normal(Proposal {
                stamp_ms: 1_000,
                orders: batch,
                abandons: Vec::new(),
            }),
        });
        if entries.len() == 100 {
            source
                .apply_entries(std::mem::take(&mut entries))
                .await
                .expect("applies");
        }
    }
    source.apply_entries(entries).await.expect("applies");
    println!(
        "state machine of {orders} orders filled in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    let baseline = reset_peak();
    let started = Instant::now();
    let snapshot = source
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("builds");
    let build_time = started.elapsed();
    let build_peak = peak().saturating_sub(baseline);
    let size = std::fs::metadata(snapshot.snapshot.path()).map_or(0, |m| m.len());

    let target_dir = tempfile::tempdir().expect("a temporary directory");
    let (_log, mut target) = store::open(target_dir.path(), retention, false).expect("opens");
    let mut receiving = target.inbox().begin().await.expect("receives");
    let mut sent = source
        .get_current_snapshot()
        .await
        .expect("reads")
        .expect("a current snapshot")
        .snapshot;
    tokio::io::copy(&mut sent, &mut receiving)
        .await
        .expect("copies");
    let baseline = reset_peak();
    let started = Instant::now();
    target
        .install_snapshot(&snapshot.meta, receiving)
        .await
        .expect("installs");
    let install_time = started.elapsed();
    let install_peak = peak().saturating_sub(baseline);

    println!("snapshot file: {:.1} MiB", size as f64 / MIB);
    println!(
        "build:   {:.2} s, peak RSS +{:.1} MiB",
        build_time.as_secs_f64(),
        build_peak as f64 / MIB
    );
    println!(
        "install: {:.2} s, peak RSS +{:.1} MiB",
        install_time.as_secs_f64(),
        install_peak as f64 / MIB
    );
}

const MIB: f64 = 1024.0 * 1024.0;

/// Resets the RSS high-water mark (Linux: `echo 5 > /proc/self/clear_refs`) and returns the
/// current RSS, in bytes.
fn reset_peak() -> u64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    status_kib("VmRSS:") * 1024
}

/// The RSS high-water mark since the last reset, in bytes.
fn peak() -> u64 {
    status_kib("VmHWM:") * 1024
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
