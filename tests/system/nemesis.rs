//! Jepsen-style verification in `cargo test`: every service on its own network namespace,
//! the load client recording its history, every nemesis once (kill -9 of the leader, of a
//! follower and of all three replicas, a paused leader, partitions made with nft: leader
//! isolated, a minority cut off, a one-way cut; kill -9 of the catalog and of the front-end;
//! the front-end killed and restarted at once, three times, while the orders it had in flight
//! still commit), in short-retention mode: request ids are forgotten after 20 s and two
//! sessions re-send acknowledged keys within that window and after it; the first five rounds
//! with the front-end's order cache, the last five without (so replicas answer the order
//! reads). Then
//! `toystore-check` over the whole history and the final state. Any violation fails the test.
//! The short version of `cluster/verify.sh --rounds 20 --retention 20`; it needs root
//! (network namespaces, nft), as CI and developers have.
//!
//! [`verify`] runs `cluster/verify.sh` on hosts of its own, so that several runs (this one and
//! the deliberately broken ones in `broken.rs`) can go in parallel.

use std::path::Path;
use std::process::{Command, ExitStatus};

use serde_json::Value;
use system_tests::processes::{binaries, repo_root};

/// Every fault `cluster/verify.sh` knows.
const FAULTS: [&str; 10] = [
    "kill-leader",
    "kill-follower",
    "kill-all-replicas",
    "pause-leader",
    "partition-leader",
    "partition-follower",
    "oneway-leader",
    "kill-catalog",
    "kill-frontend",
    "bounce-frontend",
];

#[test]
fn every_nemesis_once_and_the_history_checks_out() {
    let run = verify(
        3,
        'n',
        &[
            "--rounds",
            "10",
            "--seed",
            "20261126",
            "--fault-secs",
            "1",
            "--quiet-secs",
            "1",
            // Short enough that the run (at least 2 x 20 + 10 s of load) sees re-sends past
            // the window; long enough that the 2 s margins leave a window to re-send in.
            "--retention",
            "20",
        ],
    );
    assert_eq!(
        run.status.code(),
        Some(0),
        "verification failed ({}); failed checks: {:?}\n{}",
        run.status,
        run.failed_checks(),
        run.output
    );
    assert!(
        run.failed_checks().is_empty()
            && run.report["violations"]
                .as_array()
                .is_some_and(Vec::is_empty),
        "the checker's report lists violations:\n{}",
        run.output
    );
    for fault in FAULTS {
        assert!(
            run.report["nemesis"][fault]["started"].as_u64() > Some(0),
            "{fault} was not injected:\n{}",
            run.output
        );
    }
    // The re-sends reached both sides of the window (the checker counts them by where they
    // fell and how they were answered).
    for window in ["within", "after"] {
        let answers = run.report["reuses"][window].as_object();
        assert!(
            answers.is_some_and(|answers| answers.values().any(|n| n.as_u64() > Some(0))),
            "no key was re-sent {window} the dedup window:\n{}",
            run.output
        );
    }
    // The sessions read orders back while every kind of fault was on (the checker counts the
    // reads that overlapped each fault: found, not found, or no answer).
    for fault in FAULTS {
        let reads = &run.report["reads_during_faults"][fault];
        let taken: u64 = ["found", "absent", "unanswered"]
            .iter()
            .filter_map(|outcome| reads[outcome].as_u64())
            .sum();
        assert!(
            taken > 0,
            "no order was read during {fault}:\n{}",
            run.output
        );
    }
    // Both ways of answering an order read were exercised.
    assert!(
        run.output.contains("order cache on") && run.output.contains("order cache off"),
        "the rounds did not alternate the front-end's order cache:\n{}",
        run.output
    );
}

/// What one run of `cluster/verify.sh` left.
pub struct VerifyRun {
    pub status: ExitStatus,
    /// Its standard output and error.
    pub output: String,
    /// The checker's `report.json` (`Value::Null` if it wrote none).
    pub report: Value,
}

impl VerifyRun {
    /// The checks the report says failed.
    pub fn failed_checks(&self) -> Vec<&str> {
        self.report["checks"]
            .as_array()
            .map(|checks| {
                checks
                    .iter()
                    .filter(|check| check["violations"].as_u64() > Some(0))
                    .filter_map(|check| check["name"].as_str())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Runs `cluster/verify.sh ARGS` on hosts of its own: the namespace prefix `tt<pid><tag>-`,
/// the subnet `10.79.<net>.0/24` and a temporary run directory (each caller passes its own
/// `net` and `tag`), the binaries of this build.
pub fn verify(net: u8, tag: char, args: &[&str]) -> VerifyRun {
    assert!(
        is_root(),
        "this test makes network namespaces and nft rules: run the tests as root"
    );
    let home = tempfile::TempDir::new().expect("a temporary run directory");
    let output = Command::new(repo_root().join("cluster/verify.sh"))
        .args(args)
        .env("TOYSTORE_HOSTS_HOME", home.path().join("hosts"))
        .env("TOYSTORE_VERIFY_HOME", home.path().join("verify"))
        .env(
            "TOYSTORE_HOSTS_PREFIX",
            format!("tt{}{tag}-", std::process::id() % 10_000),
        )
        .env("TOYSTORE_HOSTS_SUBNET", format!("10.79.{net}.0/24"))
        .env("TOYSTORE_BIN_DIR", binaries())
        .output()
        .expect("cluster/verify.sh runs");
    VerifyRun {
        status: output.status,
        output: format!(
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        report: read_report(&home.path().join("verify/report.json")),
    }
}

fn read_report(path: &Path) -> Value {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}
