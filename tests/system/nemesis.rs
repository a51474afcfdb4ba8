//! Jepsen-style verification in `cargo test`: every service on its own network namespace,
//! the load client recording its history, every nemesis once (kill -9 of the leader, of a
//! follower and of all three replicas, a paused leader, partitions made with nft: leader
//! isolated, a minority cut off, a one-way cut; kill -9 of the catalog and of the front-end;
//! the front-end killed and restarted at once, three times, while the orders it had in flight
//! still commit), in short-retention mode: request ids are forgotten after 20 s and two
//! sessions re-send acknowledged keys within that window and after it. Then `toystore-check`
//! over the whole history and the final state. Any violation fails the test. The short
//! version of `cluster/verify.sh --rounds 20 --retention 20`; it needs root (network
//! namespaces, nft), as CI and developers have.

use std::process::Command;

use system_tests::processes::{binaries, repo_root};

#[test]
fn every_nemesis_once_and_the_history_checks_out() {
    assert!(
        is_root(),
        "this test makes network namespaces and nft rules: run the tests as root"
    );
    let home = tempfile::TempDir::new().expect("a temporary run directory");
    let run = home.path().join("verify");
    let output = Command::new(repo_root().join("cluster/verify.sh"))
        .args([
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
        ])
        // This test's own hosts: a namespace prefix and a subnet no other run uses.
        .env("TOYSTORE_HOSTS_HOME", &run)
        .env(
            "TOYSTORE_HOSTS_PREFIX",
            format!("tt{}-", std::process::id() % 10_000),
        )
        .env("TOYSTORE_HOSTS_SUBNET", "10.79.3.0/24")
        .env("TOYSTORE_BIN_DIR", binaries())
        .output()
        .expect("cluster/verify.sh runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "verification failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("OK:"), "the checker's verdict:\n{stdout}");
    for fault in [
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
    ] {
        assert!(
            stdout.contains(fault),
            "{fault} was not injected:\n{stdout}"
        );
    }
    // The re-sends reached both sides of the window (the checker counts them by where they
    // fell and how they were answered).
    let resends = stdout
        .split("key re-sends (by dedup window: answer):")
        .nth(1)
        .unwrap_or_default();
    for window in ["within", "after"] {
        assert!(
            resends
                .lines()
                .skip(1) // the rest of the heading's line
                .take_while(|line| line.starts_with("  "))
                .any(|line| line.trim_start().starts_with(window)),
            "no key was re-sent {window} the dedup window:\n{stdout}"
        );
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}
