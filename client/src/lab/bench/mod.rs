//! `toystore-lab bench` (and `cluster/bench.sh`, its wrapper): the project's benchmarks, on
//! loopback, against release builds. Timing lives here, never in tests.
//!
//! Each benchmark starts its own cluster (`cluster/up.sh`, with the settings it measures) in
//! its own home (default `<repo>/run/bench`) on its own ports (default base 8400), so it does
//! not disturb a cluster started with the defaults, and stops it afterwards. What it prints
//! also goes to `HOME/results/NAME.out`, next to its CSV and wrk files.
//!
//! - [`cache`]: the cached `GET /products/Tux` against [`bare`], a bare axum handler serving
//!   the same body (wrk), and a check that every cache miss costs one catalog read.
//! - [`orders`]: closed-loop orders straight to the Raft leader (batching on and off) or
//!   through the front-end (`e2e`).
//! - [`failover`]: kill -9 of the Raft leader; the gap until the next acknowledged order.
//! - [`catalog_restart`]: kill -9 of the catalog under load; how soon orders flow again.
//! - [`retention`]: what the catalog and the replicas store under a long peak load.
//! - [`compare`]: the store against [`etcd`], a 3-member etcd it starts on this machine.
//! - [`tools`]: wrk and etcd on the PATH, installed with apt-get when run as root.

pub mod bare;
pub mod cache;
pub mod catalog_restart;
pub mod compare;
pub mod etcd;
pub mod failover;
pub mod orders;
pub mod retention;
pub mod tools;

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use api::client::ServiceClient;
use api::metrics::Scrape;
use clap::{Args, ValueEnum};
use parking_lot::Mutex;
use reqwest::Url;

use super::local::{Addresses, LocalCluster};
use super::process::{lives, read_pid};
use super::say::{Interrupted, interrupted};
use super::status;
use super::tree::{Tree, absolute};

/// The benchmarks `all` runs, in order (`retention` and `etcd` take minutes and are run
/// alone).
const ALL: [Which; 5] = [
    Which::Cache,
    Which::Orders,
    Which::E2e,
    Which::Failover,
    Which::Catalog,
];

/// Which benchmark to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Which {
    /// wrk -t2 -c32 on the cached GET /products/Tux and on a bare axum handler serving the
    /// same body, five alternating 5 s rounds (medians); every cache miss is one catalog read.
    Cache,
    /// orders/s and p50/p99 straight to the Raft leader at 1, 16 and 64 clients, batching on
    /// (--batch-max 256) and off (1).
    Orders,
    /// POST /orders through the front-end at 1 and 32 clients.
    E2e,
    /// kill -9 of the Raft leader 10 times; the gap until the next acknowledged order.
    Failover,
    /// kill -9 of the catalog 5 times under 8 clients, restarted 1.5 s later; the time from
    /// its first /health answer to the next order, and its accounts checked afterwards.
    Catalog,
    /// the store at its peak order rate (wrk, 64 connections) for 3 minutes with the dedup
    /// retention at 20 s: what the catalog and every replica store must stay bounded.
    Retention,
    /// cache, orders, e2e, failover and catalog.
    All,
    /// the store against a 3-member etcd (fsync on) started on this machine, both driven by
    /// wrk; --rounds N (default 3), --seconds S per run (default 8).
    Etcd,
}

impl Which {
    pub fn name(self) -> &'static str {
        match self {
            Self::Cache => "cache",
            Self::Orders => "orders",
            Self::E2e => "e2e",
            Self::Failover => "failover",
            Self::Catalog => "catalog",
            Self::Retention => "retention",
            Self::All => "all",
            Self::Etcd => "etcd",
        }
    }

    /// The benchmarks this choice runs.
    pub fn benchmarks(self) -> Vec<Which> {
        match self {
            Self::All => ALL.to_vec(),
            one => vec![one],
        }
    }
}

/// `toystore-lab bench`'s options.
#[derive(Clone, Debug, Args)]
pub struct BenchOptions {
    /// The benchmark.
    #[arg(value_enum, default_value = "all")]
    pub which: Which,
    /// etcd only: measured rounds, the two systems taking turns to go first (default 3).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: Option<u32>,
    /// etcd only: seconds per measured wrk run (default 8).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub seconds: Option<u32>,
    /// The benchmarks' cluster home (default <repo>/run/bench; wiped by each benchmark);
    /// results in HOME/results.
    #[arg(long, env = "TOYSTORE_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Its ports: front-end BASE, catalog BASE+100, replicas BASE+201…, the bare handler
    /// BASE+50.
    #[arg(long, env = "TOYSTORE_PORT_BASE", default_value_t = 8400)]
    pub port_base: u16,
    /// etcd's ports: clients at BASE+1..3, peers at BASE+11..13.
    #[arg(long, env = "TOYSTORE_ETCD_PORT_BASE", default_value_t = 12370)]
    pub etcd_port_base: u16,
    #[command(flatten)]
    pub tree: Tree,
}

impl BenchOptions {
    /// `--rounds` and `--seconds` belong to `etcd`.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.which != Which::Etcd && (self.rounds.is_some() || self.seconds.is_some()) {
            bail!(
                "--rounds and --seconds are etcd's options (not {})",
                self.which.name()
            );
        }
        Ok(())
    }
}

/// Runs the chosen benchmarks; `Ok(false)` when one measured a failure (a request that
/// failed where none may, a figure missing).
pub fn run(options: &BenchOptions) -> anyhow::Result<bool> {
    options.check()?;
    let tree = &options.tree;
    let home = absolute(
        options
            .home
            .clone()
            .unwrap_or_else(|| tree.repo().join("run/bench")),
    );
    let results = home.join("results");
    std::fs::create_dir_all(&results)
        .with_context(|| format!("cannot create {}", results.display()))?;
    let (cluster, _) =
        LocalCluster::new(tree, home, options.port_base, results.join("cluster.log"))?;
    let mut passed = true;
    for which in options.which.benchmarks() {
        let out = Out::create(&results.join(format!("{}.out", which.name())))?;
        let bench = Bench {
            cluster: cluster.clone(),
            results: results.clone(),
            out,
        };
        let outcome = match which {
            Which::Cache => cache::run(&bench, options.port_base),
            Which::Orders => orders::run_leader(&bench),
            Which::E2e => orders::run_frontend(&bench),
            Which::Failover => failover::run(&bench),
            Which::Catalog => catalog_restart::run(&bench),
            Which::Retention => retention::run(&bench),
            Which::Etcd => compare::run(&bench, options),
            Which::All => unreachable!("`all` is a list of benchmarks"),
        };
        // Whatever ended the benchmark, its cluster stops (its data stays for a look).
        let _ = cluster.script("down.sh", &[]);
        passed &= outcome?;
    }
    Ok(passed)
}

/// A benchmark's cluster, results folder and voice.
pub struct Bench {
    pub cluster: LocalCluster,
    pub results: PathBuf,
    pub out: Out,
}

impl Bench {
    /// A new cluster on empty data, with `settings` (`TOYSTORE_…` variables) for up.sh.
    pub fn fresh_cluster(&self, settings: &[(&str, &str)]) -> anyhow::Result<Addresses> {
        self.cluster.script("down.sh", &["--wipe"])?;
        let settings: Vec<(&str, Option<&str>)> =
            settings.iter().map(|(k, v)| (*k, Some(*v))).collect();
        self.cluster.script_with("up.sh", &[], &settings)?;
        self.cluster.addresses()
    }

    /// An HTTP client carrying the cluster's token.
    pub fn http(&self, timeout: Duration) -> anyhow::Result<ServiceClient> {
        Ok(ServiceClient::new(
            timeout,
            Some(Arc::from(self.cluster.token()?)),
        ))
    }

    /// Every replica's role and term and how many requests each forwarded to a leader:
    /// printed before and after a load, where the term must stay put (no election under
    /// load) and, once the selected replica leads, nothing is forwarded.
    pub fn raft_facts(&self, at: &Addresses, when: &str) -> anyhow::Result<()> {
        let lines = super::block_on(raft_facts(at))?;
        self.out.line(format!("{when}:"));
        for line in lines {
            self.out.line(format!("  {line}"));
        }
        Ok(())
    }
}

async fn raft_facts(at: &Addresses) -> Vec<String> {
    let snapshot = status::observe(&at.nodes, Some(&at.frontend), None).await;
    let mut lines: Vec<String> = snapshot.render().lines().map(str::to_owned).collect();
    for (id, url) in at.nodes.iter() {
        let forwarded = scrape(url)
            .await
            .value("order_forwarded_total")
            .map_or("?".to_owned(), |n| n.to_string());
        lines.push(format!("replica {id} forwarded {forwarded}"));
    }
    lines
}

/// Where a benchmark speaks: stdout and its `.out` file.
#[derive(Clone)]
pub struct Out {
    file: Arc<Mutex<File>>,
}

impl Out {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self {
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// One line (or several) as it is.
    pub fn line(&self, text: impl AsRef<str>) {
        let text = text.as_ref().trim_end_matches('\n');
        println!("{text}");
        // The file is a copy of what the terminal shows: a write that fails loses the copy
        // only.
        let _ = writeln!(self.file.lock(), "{text}");
    }

    /// A benchmark's heading.
    pub fn heading(&self, text: impl AsRef<str>) {
        self.line(format!("\n== {}", text.as_ref()));
    }
}

/// Runs `future` on a multi-threaded runtime of its own (a closed-loop load must not share
/// one thread with the engine's waits), and ends it early, with [`Interrupted`], when the run
/// is interrupted.
pub fn run_load<F: Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        tokio::select! {
            output = future => Ok(output),
            () = until_interrupted() => Err(Interrupted.into()),
        }
    })
}

async fn until_interrupted() {
    while !interrupted() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Milliseconds with two decimals, for tables.
pub fn ms(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1000.0)
}

/// `median M ms, max X ms` of `durations` (sorted in place; the upper median of an even
/// count); `None` when empty.
pub fn spread(durations: &mut [Duration]) -> Option<String> {
    durations.sort_unstable();
    let median = durations.get(durations.len() / 2)?;
    let max = durations.last()?;
    Some(format!("median {} ms, max {} ms", ms(*median), ms(*max)))
}

/// The pid of the running service NAME (`HOME/pids/NAME.pid`), about to be killed: a pid
/// file naming no live process would leave the service up and make the measured gap a fake.
pub(crate) fn live_pid(cluster: &LocalCluster, name: &str) -> anyhow::Result<u32> {
    let pid = read_pid(&cluster.home.join(format!("pids/{name}.pid")))?;
    anyhow::ensure!(lives(pid), "{name} (pid {pid}) does not run");
    Ok(pid)
}

/// Orders acknowledged so far: (sent, acknowledged).
pub(crate) type Acks =
    std::sync::Arc<parking_lot::Mutex<Vec<(tokio::time::Instant, tokio::time::Instant)>>>;

/// The longest any acknowledged order took.
pub(crate) fn longest(acks: &Acks) -> Duration {
    acks.lock()
        .iter()
        .map(|(sent, acked)| *acked - *sent)
        .max()
        .unwrap_or_default()
}

/// Places orders one after another until aborted, recording when each was sent and answered.
pub(crate) async fn order_stream(frontend: api::frontend::FrontendClient, acks: Acks) {
    loop {
        let sent = tokio::time::Instant::now();
        if frontend.order("Tux", 1, None).await.is_ok() {
            acks.lock().push((sent, tokio::time::Instant::now()));
        }
    }
}

/// `url`'s `/metrics`, or an empty scrape when it does not answer (a figure then reads 0).
pub async fn scrape(url: &Url) -> Scrape {
    let http = ServiceClient::new(Duration::from_secs(2), None);
    Scrape::fetch(&http, url).await.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        options: BenchOptions,
    }

    fn parse(args: &[&str]) -> Result<BenchOptions, String> {
        let all = std::iter::once("bench").chain(args.iter().copied());
        let options = Cli::try_parse_from(all).map_err(|e| e.to_string())?.options;
        options.check().map_err(|e| e.to_string())?;
        Ok(options)
    }

    #[test]
    fn all_is_the_default_and_runs_the_five_short_benchmarks() {
        let options = parse(&[]).unwrap();
        assert_eq!(options.which, Which::All);
        assert_eq!(options.which.benchmarks(), ALL.to_vec());
        assert!(!ALL.contains(&Which::Etcd) && !ALL.contains(&Which::Retention));
        assert_eq!(Which::Retention.benchmarks(), vec![Which::Retention]);
    }

    #[test]
    fn rounds_and_seconds_belong_to_etcd_and_are_positive() {
        let etcd = parse(&["etcd", "--rounds", "2", "--seconds=3"]).unwrap();
        assert_eq!((etcd.rounds, etcd.seconds), (Some(2), Some(3)));
        let error = parse(&["orders", "--rounds", "2"]).unwrap_err();
        assert!(error.contains("etcd's options (not orders)"), "{error}");
        assert!(parse(&["etcd", "--seconds", "0"]).is_err());
        assert!(parse(&["nonsense"]).is_err());
    }

    #[test]
    fn a_kill_needs_a_pid_file_naming_a_running_process() {
        let home = std::env::temp_dir().join(format!("toystore-bench-pids-{}", std::process::id()));
        std::fs::create_dir_all(home.join("pids")).expect("a temporary directory");
        let cluster = LocalCluster {
            tree: Tree::default(),
            env: Vec::new(),
            log: home.join("cluster.log"),
            home: home.clone(),
        };
        let write = |name: &str, text: String| {
            std::fs::write(home.join(format!("pids/{name}.pid")), text).expect("a pid file")
        };
        write("catalog", format!("{}\n", std::process::id()));
        write("node-2", format!("{}\n", u32::MAX));
        assert_eq!(live_pid(&cluster, "catalog").ok(), Some(std::process::id()));
        let stale = live_pid(&cluster, "node-2").unwrap_err().to_string();
        assert!(
            stale.contains("node-2 (pid 4294967295) does not run"),
            "{stale}"
        );
        assert!(live_pid(&cluster, "frontend").is_err());
        let _ = std::fs::remove_dir_all(home);
    }

    #[test]
    fn the_spread_is_the_middle_value_and_the_largest() {
        let ms = Duration::from_millis;
        assert_eq!(
            spread(&mut [ms(5), ms(1), ms(3)]).as_deref(),
            Some("median 3.00 ms, max 5.00 ms")
        );
        assert_eq!(
            spread(&mut [ms(4), ms(1), ms(3), ms(2)]).as_deref(),
            Some("median 3.00 ms, max 4.00 ms")
        );
        assert_eq!(spread(&mut []), None);
    }
}
