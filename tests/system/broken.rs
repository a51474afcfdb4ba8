//! The verification can fail: `toystore-lab verify --break KIND` runs a store that breaks one
//! promise on purpose (the services started with `--fault-injection` and `--break KIND`), and
//! the checker must report the check that promise belongs to as failed, with exit status 1. A
//! checker that passes every run proves nothing; these runs show each of these bugs would be
//! caught. Short runs (1 s faults) on hosts of their own, so they can go in parallel with each
//! other and with the nemesis test; root is needed, as there.

use client::lab::summary::failed_checks;

use crate::nemesis::verify;

/// Runs `toystore-lab verify --break KIND ARGS` and asserts that the checker failed `check`.
fn caught(kind: &str, check: &str, net: u8, tag: char, args: &[&str]) {
    let mut all = vec!["--break", kind, "--fault-secs", "1", "--quiet-secs", "1"];
    all.extend_from_slice(args);
    let outcome = verify(net, tag, &all);
    let failed = failed_checks(&outcome.report);
    assert_eq!(
        outcome.exit_code(),
        1,
        "verify --break {kind} should end with status 1 (violations); failed checks: {failed:?}"
    );
    assert!(
        failed.contains(&check),
        "with --break {kind} the checker should fail {check}; it failed {failed:?}"
    );
}

/// The catalog commits stock changes without pushing their invalidations: the front-end's
/// cache keeps showing the stock from before an order that was answered.
#[test]
fn a_skipped_invalidation_fails_read_your_writes() {
    caught(
        "skip-invalidation",
        "read-your-writes",
        4,
        'i',
        &["--rounds", "1", "--seed", "1", "--faults", "kill-follower"],
    );
}

/// The catalog puts a confirmed reservation's units back on sale: sold and in stock at once.
#[test]
fn a_released_confirmed_reservation_fails_stock_conservation() {
    caught(
        "release-confirmed",
        "stock-conservation",
        5,
        'r',
        &["--rounds", "1", "--seed", "1", "--faults", "kill-follower"],
    );
}

/// The leader answers orders before their Raft entry commits: an isolated or killed leader's
/// answers are lost, and its successor hands out the same numbers again.
#[test]
fn acknowledging_before_the_commit_fails_acked_orders_durable() {
    caught(
        "ack-before-commit",
        "acked-orders-durable",
        6,
        'a',
        &[
            "--rounds",
            "2",
            "--seed",
            "1",
            "--faults",
            "partition-leader,kill-leader",
        ],
    );
}

/// Replicas answer order reads from their own state machine: a follower that has not applied
/// an acknowledged order yet says 404. The client reads every acknowledged order back at once
/// from a replica picked at random (`--read-replicas`), so such a read comes within
/// milliseconds of the acknowledgement, before a follower learns the commit.
#[test]
fn a_local_read_fails_linearizable_reads() {
    caught(
        "local-read",
        "linearizable-reads",
        7,
        'l',
        &["--rounds", "1", "--seed", "1", "--faults", "kill-follower"],
    );
}
