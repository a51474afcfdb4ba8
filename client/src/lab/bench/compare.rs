//! `bench etcd`: the store against a 3-member etcd (Debian's defaults: the WAL fsynced before
//! a commit is acknowledged) that the benchmark starts on this machine ([`super::etcd`]), in
//! one run, both driven by wrk with `cluster/bench/requests.lua`: `POST /orders` through the
//! front-end at 1 and 64 connections and `GET /orders/0` at 64; etcd's puts and linearizable
//! ranges at its leader (no forwarding hop: etcd's best case) at 1 and 64. N rounds, the two
//! systems taking turns to go first; the table of every figure and the ratios (orders c64 /
//! puts c64, order p50 c1 / put p50 c1, order reads c64 / ranges c64) comes from
//! [`crate::lab::wrk::table`].

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use api::client::ServiceClient;
use api::frontend::FrontendClient;

use super::etcd::{Etcd, EtcdPorts, RANGE_KEY};
use super::tools::{ETCD, WRK, ensure, wrk};
use super::{Bench, BenchOptions};
use crate::lab::block_on;
use crate::lab::local::{Addresses, commit};
use crate::lab::wrk::{WrkRun, read_rounds, table};

const DEFAULT_ROUNDS: u32 = 3;
const DEFAULT_SECONDS: u32 = 8;
const WARM_UP_SECONDS: u32 = 2;

pub fn run(bench: &Bench, options: &BenchOptions) -> anyhow::Result<bool> {
    ensure(&[WRK, ETCD], &bench.out)?;
    let rounds = options.rounds.unwrap_or(DEFAULT_ROUNDS);
    let seconds = options.seconds.unwrap_or(DEFAULT_SECONDS);
    let dir = bench.results.join("etcd");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    bench.out.heading(format!(
        "etcd: the store against a 3-member etcd {}, fsync on; {rounds} rounds, {seconds} s per run",
        etcd_version()
    ));
    bench.out.line(format!(
        "{}, commit {}, {} cores, load average {}",
        utc_now(),
        commit(&bench.cluster.tree.repo()),
        std::thread::available_parallelism().map_or(0, usize::from),
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    ));

    let at = bench.fresh_cluster(&[("TOYSTORE_INITIAL_STOCK", "10000000")])?;
    let ports = EtcdPorts::new(options.etcd_port_base, &store_ports(&at))?;
    let etcd = Etcd::start(ports, &dir, bench.out.clone())?;
    bench.out.line(format!(
        "store: front-end {} (batching at the front-end, 3 replicas, fsync on)",
        at.frontend
    ));
    bench.out.line(format!(
        "etcd:  clients at 127.0.0.1:{}-{}, peers at :{}-{}, data in {}",
        ports.client(1),
        ports.client(3),
        ports.peer(1),
        ports.peer(3),
        etcd.data.display()
    ));

    // Order 0, read by the read runs; the toys, ordered in turn by the order runs.
    let frontend = FrontendClient::new(
        at.frontend.clone(),
        ServiceClient::new(Duration::from_secs(5), None),
    );
    block_on(frontend.order("Tux", 1, None))?.context("the first order failed")?;
    let toys: Vec<String> = block_on(frontend.products())?
        .context("GET /products")?
        .into_iter()
        .map(|toy| toy.name)
        .collect();
    anyhow::ensure!(!toys.is_empty(), "the front-end lists no toys");

    let runs = Runs {
        bench,
        script: bench.cluster.tree.script("bench/requests.lua"),
        dir: dir.clone(),
    };
    let store = at.frontend.as_str().trim_end_matches('/').to_owned();
    let order: Vec<&str> = ["order"]
        .into_iter()
        .chain(toys.iter().map(String::as_str))
        .collect();
    bench.raft_facts(&at, "before")?;
    etcd.facts(&bench.out)?;
    // Warm-up, not measured: connections, caches, the first RocksDB and bbolt pages.
    let leader_url = ports.client_url(etcd.leader()?);
    runs.measure(None, "store", 64, &store, &order, WARM_UP_SECONDS)?;
    runs.measure(None, "etcd", 64, &leader_url, &["put"], WARM_UP_SECONDS)?;
    for round in 1..=rounds {
        // Asked anew every round, in case it moved.
        let leader = etcd.leader()?;
        let etcd_url = ports.client_url(leader);
        bench.out.line(format!(
            "round {round} of {rounds} (etcd's leader: member {leader})"
        ));
        let store_first = round % 2 == 1;
        for system_is_store in [store_first, !store_first] {
            let r = Some(round);
            if system_is_store {
                runs.measure(r, "store-order-c1", 1, &store, &order, seconds)?;
                runs.measure(r, "store-order-c64", 64, &store, &order, seconds)?;
                runs.measure(r, "store-read-c64", 64, &store, &["read", "0"], seconds)?;
            } else {
                runs.measure(r, "etcd-put-c1", 1, &etcd_url, &["put"], seconds)?;
                runs.measure(r, "etcd-put-c64", 64, &etcd_url, &["put"], seconds)?;
                let range = ["range", RANGE_KEY];
                runs.measure(r, "etcd-range-c1", 1, &etcd_url, &range, seconds)?;
                runs.measure(r, "etcd-range-c64", 64, &etcd_url, &range, seconds)?;
            }
        }
    }
    bench.raft_facts(&at, "after")?;
    etcd.facts(&bench.out)?;
    drop(etcd);
    let (summary, complete) = table(&read_rounds(&dir)?);
    std::fs::write(dir.join("summary.txt"), &summary)?;
    bench.out.line("");
    bench.out.line(summary);
    Ok(complete)
}

/// Where the wrk runs of one comparison go.
struct Runs<'a> {
    bench: &'a Bench,
    script: PathBuf,
    dir: PathBuf,
}

impl Runs<'_> {
    /// One wrk run of requests.lua (`args` are its arguments), its output in
    /// `etcd/round-ROUND/NAME.txt` and its line printed; a warm-up (`round` None) goes to
    /// `etcd/warm-up` and is not printed.
    fn measure(
        &self,
        round: Option<u32>,
        name: &str,
        connections: u32,
        url: &str,
        args: &[&str],
        seconds: u32,
    ) -> anyhow::Result<()> {
        let folder = match round {
            Some(round) => self.dir.join(format!("round-{round}")),
            None => self.dir.join("warm-up"),
        };
        std::fs::create_dir_all(&folder)?;
        let output = folder.join(format!("{name}.txt"));
        std::fs::write(&output, "")?;
        let threads = if connections > 1 { 2 } else { 1 };
        let mut command: Vec<String> = vec![
            "--latency".into(),
            format!("-t{threads}"),
            format!("-c{connections}"),
            format!("-d{seconds}s"),
            "--timeout".into(),
            "5s".into(),
            "-s".into(),
            self.script.display().to_string(),
            url.into(),
            "--".into(),
        ];
        command.extend(args.iter().map(|arg| (*arg).to_owned()));
        wrk(&command, &output).with_context(|| format!("wrk failed ({name})"))?;
        if round.is_some() {
            let text = std::fs::read_to_string(&output)?;
            let run = WrkRun::parse(&text).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            self.bench.out.line(format!("  {name:<16} {}", run.line()));
        }
        Ok(())
    }
}

/// The ports the store listens on.
fn store_ports(at: &Addresses) -> Vec<u16> {
    [&at.frontend, &at.catalog]
        .into_iter()
        .chain(at.nodes.iter().map(|(_, url)| url))
        .filter_map(reqwest::Url::port)
        .collect()
}

/// The time, `YYYY-MM-DD HH:MM UTC`, for the record (date(1)'s).
fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// `etcd --version`'s version, or "(version unknown)".
fn etcd_version() -> String {
    Command::new("etcd")
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .find_map(|line| line.strip_prefix("etcd Version:"))
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_else(|| "(version unknown)".into())
}
