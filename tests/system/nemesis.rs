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
//! [`verify`] runs the engine of `toystore-lab verify` (`client::lab`) as a library, on hosts
//! of its own, so that several runs (this one and the deliberately broken ones in `broken.rs`)
//! can go in parallel, and the test judges the checker's typed report, not printed text.

use std::collections::BTreeSet;

use client::lab::nemesis;
use client::lab::options::VerifyOptions;
use client::lab::say::Say;
use client::lab::summary::failed_checks;
use client::lab::verify::Outcome;
use system_tests::processes::{binaries, repo_root};

#[test]
fn every_nemesis_once_and_the_history_checks_out() {
    let outcome = verify(
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
    let report = &outcome.report;
    assert_eq!(
        (outcome.exit_code(), failed_checks(report)),
        (0, vec![]),
        "the checker found violations: {:#?}",
        report.violations
    );
    for fault in nemesis::names() {
        assert!(
            report.nemesis.get(fault).is_some_and(|n| n.started > 0),
            "{fault} was not injected: {:?}",
            report.nemesis
        );
    }
    // The re-sends reached both sides of the window (the checker counts them by where they
    // fell and how they were answered).
    for window in ["within", "after"] {
        assert!(
            report
                .reuses
                .get(window)
                .is_some_and(|answers| answers.values().any(|n| *n > 0)),
            "no key was re-sent {window} the dedup window: {:?}",
            report.reuses
        );
    }
    // The sessions read orders back while every kind of fault was on (the checker counts the
    // reads that overlapped each fault: found, not found, or no answer).
    for fault in nemesis::names() {
        let taken = report
            .reads_during_faults
            .get(fault)
            .map_or(0, |r| r.found + r.absent + r.unanswered);
        assert!(taken > 0, "no order was read during {fault}");
    }
    // Both ways of answering an order read were exercised.
    let caches: BTreeSet<bool> = outcome.rounds.iter().map(|r| r.order_cache).collect();
    assert_eq!(
        caches.len(),
        2,
        "the rounds did not alternate the front-end's order cache"
    );
}

/// Runs `toystore-lab verify ARGS` (the engine, as a library) on hosts of its own: the
/// namespace prefix `tt<pid><tag>-`, the subnet `10.79.<net>.0/24` and a temporary run
/// directory (each caller passes its own `net` and `tag`), the binaries of this build. Its
/// lines go to the test's output; a run that could not be completed fails the test.
pub fn verify(net: u8, tag: char, args: &[&str]) -> Outcome {
    assert!(
        client::lab::process::is_root(),
        "this test makes network namespaces and nft rules: run the tests as root"
    );
    let home = tempfile::TempDir::new().expect("a temporary run directory");
    let mut options = VerifyOptions::from_args(args.iter().copied()).expect("valid options");
    options.hosts_home = Some(home.path().join("hosts"));
    options.out = Some(home.path().join("verify"));
    options.hosts_prefix = Some(format!("tt{}{tag}-", std::process::id() % 10_000));
    options.hosts_subnet = Some(format!("10.79.{net}.0/24"));
    options.tree.bin_dir = Some(binaries().to_path_buf());
    options.tree.cluster_dir = Some(repo_root().join("cluster"));
    match client::lab::verify::run(&options, &Say::default()) {
        Ok(outcome) => outcome,
        Err(error) => panic!("the verification could not be completed: {error:#}"),
    }
}
