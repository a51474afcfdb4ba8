//! The lab's verification engine in Rust (`toystore-lab`), out of `cluster/*.sh`: each
//! decision the scripts made has one home that tests can reach.
//!
//! - [`verify`]: `toystore-lab verify` (`cluster/verify.sh` is its wrapper): a fresh store on
//!   network namespaces, the load client recording its history, one fault per round, the
//!   final state and the checker.
//! - [`chaos`]: `toystore-lab chaos` (`cluster/chaos.sh` is its wrapper): kill -9 and restart
//!   replicas of a local cluster under the load client, and [`failover`]: what it measured
//!   (`failover.csv`, the round table); [`local`]: that cluster, through the operator's
//!   scripts, and the load client run in-process.
//! - [`experiment`]: `toystore-lab experiment` (`cluster/experiment.sh`): latency per request
//!   type against the order probability, cache on and off (`latency.csv`).
//! - [`nemesis`]: the faults, behind one interface (name, available, inject, heal); they
//!   decide, the engine runs their `cluster/hosts.sh` commands.
//! - [`schedule`]: which fault each round injects, from the seed.
//! - [`hosts`]: running `cluster/hosts.sh` and reading its answers; [`script`]: running any
//!   cluster script with its output logged.
//! - [`options`]: verify's command line and what follows from it; [`tree`]: where the
//!   repository, its scripts and the binaries are; [`process`]: signals and `/proc`.
//! - [`summary`]: the rounds as they happened and the table a run ends with.
//! - [`audit`]: after `cluster/fuzz-api.sh`: is the store healthy, does its stock add up.
//! - [`bench`]: `toystore-lab bench` (`cluster/bench.sh`): the benchmarks, each on a cluster
//!   of its own, and the etcd comparison; [`wrk`]: what `wrk --latency` printed (a run's line,
//!   the etcd comparison's table and ratios, the cache benchmark's medians).
//! - [`say`]: time-stamped lines, the progress bar, interruptible pauses.
//! - [`status`]: the services' `/status`, typed, and the decisions the cluster scripts take
//!   on them (who leads, settled or not, agreement, selection): `toystore-lab status` and
//!   `toystore-lab leader`.

pub mod audit;
pub mod bench;
pub mod chaos;
pub mod experiment;
pub mod failover;
pub mod hosts;
pub mod local;
pub mod nemesis;
pub mod options;
pub mod process;
pub mod say;
pub mod schedule;
pub mod script;
pub mod status;
pub mod summary;
pub mod tree;
pub mod verify;
pub mod wrk;

/// Runs `future` to its end on a runtime of its own, for the engine's synchronous steps and
/// the binary's one-shot subcommands.
pub fn block_on<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(future))
}
