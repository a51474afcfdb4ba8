//! `toystore-lab`: the lab's engine as one binary ([`client::lab`]).
//!
//! `toystore-lab verify --rounds R …` runs a Jepsen-style verification (exit 0: no violation,
//! 1: violations, 2: the run could not be completed, 130: interrupted); `chaos`, `experiment`
//! and `bench` run the crash experiment, the evaluation and the benchmarks on local clusters
//! (the same exit statuses); `status` and `leader` read the services' `/status` for
//! `cluster/*.sh` (typed, so no script parses JSON); `schedule` prints the fault schedule a
//! seed gives; `audit` and `free-port-base` serve `cluster/fuzz-api.sh`.

use std::collections::BTreeSet;
use std::process::ExitCode;

use api::cluster::NodeAddrs;
use clap::{Parser, Subcommand};
use client::lab::bench::BenchOptions;
use client::lab::block_on;
use client::lab::chaos::ChaosOptions;
use client::lab::experiment::ExperimentOptions;
use client::lab::options::VerifyOptions;
use client::lab::say::{Interrupted, Say, interrupted, watch_signals};
use client::lab::status::{self, Snapshot};

#[derive(Debug, Parser)]
#[command(name = "toystore-lab", about = "The toy store's lab tooling")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verifies the store under faults: every service on its own network namespace, the load
    /// client recording its history, one fault per round (kill-leader, kill-follower,
    /// kill-all-replicas, pause-leader, partition-leader, partition-follower, oneway-leader,
    /// kill-catalog, kill-frontend, bounce-frontend), then the checker over the history and
    /// the final state. Needs root. Files in --out: history.jsonl, nemesis.jsonl, all.jsonl,
    /// state.json, report.json, timeline.html, check.txt, client.log, nemesis.log, terms.txt.
    Verify(Box<VerifyOptions>),
    /// The lab's crash experiment: five client sessions order while, each round, one replica
    /// of a local cluster is killed with kill -9 and restarted on its data (round 1: the
    /// leader). Writes DATA/failover.csv (drawn by `cargo run -p plots`) and DATA/raw/; exits
    /// 1 unless the client saw no error, its sessions outlasted the rounds and every replica
    /// ends with the same applied index and digest.
    Chaos(Box<ChaosOptions>),
    /// The lab's evaluation: latency per request type for order probabilities 0 to 0.8, with
    /// the front-end's cache on and off, each setting on a fresh local cluster. Writes
    /// DATA/latency.csv (drawn by `cargo run -p plots`) and DATA/raw/; exits 1 if a setting
    /// failed.
    Experiment(Box<ExperimentOptions>),
    /// The benchmarks, each on a local cluster of its own (HOME, default <repo>/run/bench;
    /// results in HOME/results): cache, orders, e2e, failover, catalog, retention, all (the
    /// first five) or etcd (the store against a 3-member etcd started here). Needs wrk (and
    /// etcd for `etcd`; installed with apt-get when run as root). Exits 1 when a benchmark's
    /// check failed (a cache miss that is not one catalog read, a failed request in the etcd
    /// comparison, records that grow with the orders).
    Bench(Box<BenchOptions>),
    /// Prints every replica's /status (role, term, leader, health, applied index, orders,
    /// digest), whether they agree, whether the front-end's selection leads, the catalog's
    /// health and the front-end's cache; with --json, the answers as JSON.
    Status {
        #[command(flatten)]
        services: Services,
        /// Print the answers as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Prints `ID TERM` of the replica that says it leads (the highest term if several do);
    /// exits 1, silently, when none does (scripts poll it).
    Leader {
        #[command(flatten)]
        services: Services,
        /// Only when every replica answers and names that leader at that term.
        #[arg(long)]
        settled: bool,
        /// Only when the front-end (--frontend) has selected that leader.
        #[arg(long, requires = "frontend")]
        selected: bool,
    },
    /// Checks a store after cluster/fuzz-api.sh: healthy, no reservation left pending, and
    /// every unit that left the stock bought by an order; exits 1 when it is not so.
    Audit {
        /// The front-end's URL.
        #[arg(long)]
        frontend: reqwest::Url,
        /// The catalog's URL.
        #[arg(long)]
        catalog: reqwest::Url,
        /// The cluster token (the catalog's /stock is internal).
        #[arg(long, env = "TOYSTORE_CLUSTER_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Prints a port base BASE (between 20000 and 30000) whose store ports are all free on
    /// 127.0.0.1: BASE, BASE+100, BASE+201..203 (cluster/lib.sh's layout).
    FreePortBase,
    /// Prints the fault of each round and a number that picks its target, one `FAULT PICK`
    /// line per round: every fault once before any twice, none twice in a row, the same for
    /// the same seed.
    Schedule {
        /// Seed of the schedule.
        #[arg(long)]
        seed: u64,
        /// Number of rounds.
        #[arg(long)]
        rounds: usize,
        /// The fault kinds to draw from (distinct).
        #[arg(required = true)]
        faults: Vec<String>,
    },
}

/// The services to ask.
#[derive(Debug, clap::Args)]
struct Services {
    /// The replicas, `ID=URL,…` (the live ones: a dead one only adds a timeout).
    #[arg(long, default_value = "")]
    nodes: String,
    /// The front-end's URL.
    #[arg(long)]
    frontend: Option<reqwest::Url>,
    /// The catalog's URL.
    #[arg(long)]
    catalog: Option<reqwest::Url>,
}

impl Services {
    fn observe(&self) -> Result<Snapshot, String> {
        let nodes: NodeAddrs = if self.nodes.is_empty() {
            NodeAddrs::new([])
        } else {
            self.nodes.parse().map_err(|e| format!("--nodes: {e}"))?
        };
        block_on(status::observe(
            &nodes,
            self.frontend.as_ref(),
            self.catalog.as_ref(),
        ))
        .map_err(|e| format!("cannot start a runtime: {e}"))
    }
}

fn main() -> ExitCode {
    match Args::parse().command {
        Command::Verify(options) => verify(&options),
        Command::Chaos(options) => engine("chaos", Some(PLOTS), |say| {
            client::lab::chaos::run(&options, say)
        }),
        Command::Experiment(options) => engine("experiment", Some(PLOTS), |say| {
            client::lab::experiment::run(&options, say)
        }),
        Command::Bench(options) => engine("bench", None, |_| client::lab::bench::run(&options)),
        Command::Status { services, json } => match services.observe() {
            Ok(snapshot) if json => match serde_json::to_string_pretty(&snapshot) {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(error) => fail(&error.to_string()),
            },
            Ok(snapshot) => {
                print!("{}", snapshot.render());
                ExitCode::SUCCESS
            }
            Err(error) => fail(&error),
        },
        Command::Leader {
            services,
            settled,
            selected,
        } => match services.observe() {
            Ok(snapshot) => {
                let leader = if settled {
                    snapshot.settled_leader()
                } else {
                    snapshot.leader()
                };
                match leader {
                    Some((id, term)) if !selected || snapshot.selected() == Some(id) => {
                        println!("{id} {term}");
                        ExitCode::SUCCESS
                    }
                    // Silent: scripts poll this until it succeeds.
                    _ => ExitCode::FAILURE,
                }
            }
            Err(error) => fail(&error),
        },
        Command::Audit {
            frontend,
            catalog,
            token,
        } => audit(&frontend, &catalog, token.as_deref()),
        Command::FreePortBase => free_port_base(),
        Command::Schedule {
            seed,
            rounds,
            faults,
        } => {
            let distinct: BTreeSet<&String> = faults.iter().collect();
            if distinct.len() != faults.len() {
                eprintln!("toystore-lab: a fault kind is named twice in {faults:?}");
                return ExitCode::from(2);
            }
            for round in client::lab::schedule::schedule(&faults, rounds, seed) {
                println!("{} {}", round.fault, round.pick);
            }
            ExitCode::SUCCESS
        }
    }
}

fn audit(frontend: &reqwest::Url, catalog: &reqwest::Url, token: Option<&str>) -> ExitCode {
    match block_on(client::lab::audit::audit(frontend, catalog, token)) {
        Err(error) => fail(&format!("cannot start a runtime: {error}")),
        Ok(Ok(verdict)) => {
            println!("{verdict}");
            ExitCode::SUCCESS
        }
        Ok(Err(error)) => {
            eprintln!("toystore-lab: the store is not in order: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn free_port_base() -> ExitCode {
    use rand::Rng;
    let mut rng = rand::rng();
    for _ in 0..200 {
        let base: u16 = rng.random_range(20_000..30_000);
        let free = [0, 100, 201, 202, 203]
            .iter()
            .all(|offset| std::net::TcpListener::bind(("127.0.0.1", base + offset)).is_ok());
        if free {
            println!("{base}");
            return ExitCode::SUCCESS;
        }
    }
    fail("no free port base between 20000 and 30000")
}

/// A usage or setup error: exit status 2.
fn fail(error: &str) -> ExitCode {
    eprintln!("toystore-lab: {error}");
    ExitCode::from(2)
}

fn verify(options: &VerifyOptions) -> ExitCode {
    if let Err(error) = watch_signals() {
        eprintln!("toystore-lab: cannot watch for SIGINT: {error}");
        return ExitCode::from(2);
    }
    match client::lab::verify::run(options, &Say::default()) {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(error) if error.is::<Interrupted>() || interrupted() => {
            eprintln!("toystore-lab: interrupted");
            ExitCode::from(130)
        }
        Err(error) => {
            eprintln!("toystore-lab: error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// What to do after a run whose results `plots` draws.
const PLOTS: &str = "render the figures with: cargo run -p plots";

/// Runs an engine that ends with a verdict: 0 passed, 1 failed, 2 could not run, 130
/// interrupted; `next` is said after a pass.
fn engine(
    name: &str,
    next: Option<&str>,
    run: impl FnOnce(&Say) -> anyhow::Result<bool>,
) -> ExitCode {
    if let Err(error) = watch_signals() {
        return fail(&format!("cannot watch for SIGINT: {error}"));
    }
    let say = Say::default();
    match run(&say) {
        Ok(true) => {
            match next {
                Some(next) => say.line(format!("{name} run passed; {next}")),
                None => say.line(format!("{name} run passed")),
            }
            ExitCode::SUCCESS
        }
        Ok(false) => {
            eprintln!("toystore-lab: {name} run FAILED (see above)");
            ExitCode::FAILURE
        }
        Err(error) if error.is::<Interrupted>() || interrupted() => {
            eprintln!("toystore-lab: interrupted");
            ExitCode::from(130)
        }
        Err(error) => fail(&format!("error: {error:#}")),
    }
}
