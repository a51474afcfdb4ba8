//! `toystore-lab chaos` (and `cluster/chaos.sh`, its wrapper): the lab's crash experiment.
//! Five client sessions order with probability 0.8 while, each round, one order replica is
//! killed with kill -9 (`cluster/kill.sh`) and restarted a few seconds later on its old data
//! (`cluster/restart.sh`). Round 1 kills the Raft leader; later rounds a replica drawn from the
//! seed.
//!
//! A round: kill, `--down-secs` down, restart, wait until the replica has applied what the
//! leader had, `--steady-secs` of steady load. The client (the `client` crate, run in this
//! process) starts 2 s before round 1 and runs to its end; without `--iterations` a
//! 100-iteration calibration run measures the sessions' pace, so they outlast the rounds.
//! Three verdicts, each printed, and the run fails unless all hold: the client saw no error and
//! every acknowledged order verified; its sessions were still sending when the last replica came
//! back; every replica ends with the same applied index and digest. The analysis
//! ([`super::failover`]) writes `failover.csv`, which `plots` draws.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use api::cluster::NodeAddrs;
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Url;

use super::failover::{self, EVENTS_HEADER, Event, EventKind};
use super::local::{LocalCluster, client_config, commit, observe, prepare, run_client};
use super::say::Say;
use super::status::Snapshot;
use super::tree::Tree;
use crate::Config;
use crate::history::unix_ms;

const CLIENTS: u32 = 5;
const PROB: &str = "0.8";
const WARM_UP: Duration = Duration::from_secs(2);
const CALIBRATION_ITERATIONS: u64 = 100;
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);
const LEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// `toystore-lab chaos`'s options.
#[derive(Clone, Debug, Args)]
pub struct ChaosOptions {
    /// Kill and restart rounds.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Iterations per client session (default: calibrated so the sessions outlast the rounds).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub iterations: Option<u64>,
    /// Seed of the client and of the choice of replicas.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Where the results go (default <repo>/plots/data).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// The chaos cluster's run directory (default <repo>/run/chaos; wiped first).
    #[arg(long, env = "TOYSTORE_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Its ports: front-end BASE, catalog BASE+100, replicas BASE+201…
    #[arg(long, env = "TOYSTORE_PORT_BASE", default_value_t = 9200)]
    pub port_base: u16,
    /// Stock per toy (so no order runs out of stock).
    #[arg(long, env = "TOYSTORE_INITIAL_STOCK", default_value_t = 1_000_000)]
    pub initial_stock: u64,
    /// Seconds a killed replica stays down.
    #[arg(long, env = "CHAOS_DOWN_SECS", default_value_t = 3.0)]
    pub down_secs: f64,
    /// Seconds of steady load between rounds.
    #[arg(long, env = "CHAOS_STEADY_SECS", default_value_t = 2.0)]
    pub steady_secs: f64,
    #[command(flatten)]
    pub tree: Tree,
}

/// The files of a run, in `DATA/raw`.
struct Raw {
    dir: PathBuf,
    events: PathBuf,
    client_json: PathBuf,
    client_out: PathBuf,
    timeline: PathBuf,
    params: PathBuf,
}

impl Raw {
    fn new(data: &Path) -> Self {
        let dir = data.join("raw");
        let at = |name: &str| dir.join(format!("failover-{name}"));
        Self {
            events: at("events.csv"),
            client_json: at("client.json"),
            client_out: at("client.out"),
            timeline: at("timeline.csv"),
            params: at("params.txt"),
            dir,
        }
    }
}

/// Runs the experiment; `Ok(false)` when a verdict failed.
pub fn run(options: &ChaosOptions, say: &Say) -> anyhow::Result<bool> {
    ensure!(
        options.down_secs >= 0.0 && options.steady_secs >= 0.0,
        "--down-secs and --steady-secs must be numbers of seconds"
    );
    let (mut cluster, dirs) = prepare(
        &options.tree,
        "chaos",
        options.home.as_deref(),
        options.data.as_deref(),
        "failover-",
        options.port_base,
        "failover-cluster.log",
    )?;
    cluster.env.push((
        "TOYSTORE_INITIAL_STOCK".into(),
        options.initial_stock.to_string(),
    ));
    let (data, bins_from) = (dirs.data, dirs.bins_from);
    let raw = Raw::new(&data);
    let home = cluster.home.clone();

    say.line(format!(
        "chaos: {} rounds of kill -9 and restart under {CLIENTS} client sessions (p {PROB}, {} iterations each, seed {})",
        options.rounds,
        options.iterations.map_or("calibrated".to_owned(), |n| n.to_string()),
        options.seed
    ));
    say.line(format!(
        "  cluster in {}, front-end port {}; results: {}, raw files in {}",
        home.display(),
        options.port_base,
        data.join("failover.csv").display(),
        raw.dir.display()
    ));
    let started = Instant::now();
    cluster.script("down.sh", &["--wipe"])?;
    let result = experiment(options, say, &cluster, &raw, &data, &bins_from);
    match cluster.script("down.sh", &[]) {
        Ok(_) => say.line(format!(
            "wall time: {:.1} s; the cluster is stopped, its data kept in {}",
            started.elapsed().as_secs_f64(),
            home.display()
        )),
        Err(error) => say.line(format!("warning: cluster/down.sh failed: {error:#}")),
    }
    result
}

fn experiment(
    options: &ChaosOptions,
    say: &Say,
    cluster: &LocalCluster,
    raw: &Raw,
    data: &Path,
    bins_from: &Path,
) -> anyhow::Result<bool> {
    let up_started = Instant::now();
    cluster.script("up.sh", &[])?;
    let super::local::Addresses {
        frontend, nodes, ..
    } = cluster.addresses()?;
    ensure!(
        nodes.len() >= 3,
        "chaos needs at least 3 replicas, the cluster has {}",
        nodes.len()
    );
    let ids: Vec<u64> = nodes.iter().map(|(id, _)| id).collect();
    let (leader, term) = wait_leader(&nodes, say)?.context("no Raft leader after cluster/up.sh")?;
    say.line(format!(
        "cluster up in {:.1} s (Raft leader: node {leader}, term {term})",
        up_started.elapsed().as_secs_f64()
    ));

    let down = Duration::from_secs_f64(options.down_secs);
    let steady = Duration::from_secs_f64(options.steady_secs);
    let iterations = match options.iterations {
        Some(n) => n,
        None => {
            // Warm-up, then per round: down, restart and leader check (~2 s), catch-up
            // (~2 s), steady (not after the last round); then 3 s of load after the last
            // restart.
            let rounds = f64::from(options.rounds);
            let planned = Duration::from_secs_f64(
                WARM_UP.as_secs_f64() + rounds * (options.down_secs + 4.0 + options.steady_secs)
                    - options.steady_secs
                    + 3.0,
            );
            let calibration = chaos_client(
                &frontend,
                CALIBRATION_ITERATIONS,
                options.seed + 1,
                &raw.dir.join("failover-calibration.json"),
                &raw.dir.join("failover-calibration-timeline.csv"),
            )?;
            let report = run_client(calibration, &raw.dir.join("failover-calibration.out"))
                .join()
                .map_err(|_| anyhow::anyhow!("the calibration client panicked"))??;
            ensure!(
                report.succeeded(),
                "the calibration run failed before any fault (see {})",
                raw.dir.join("failover-calibration.out").display()
            );
            let (rate, iterations) =
                failover::iterations_for(&report.timeline, CALIBRATION_ITERATIONS, planned);
            say.line(format!(
                "calibration: a session runs ~{rate:.0} iterations/s here; the rounds should take ~{:.0} s: {iterations} iterations",
                planned.as_secs_f64()
            ));
            iterations
        }
    };
    fs::write(
        &raw.params,
        format!(
            "toystore-lab chaos run at Unix ms {:.0}\ncommit {}\nrounds {}, iterations {iterations}, clients {CLIENTS}, prob {PROB}, seed {}\ndown {} s, steady {} s, warm-up {} s, initial stock {}\nbinaries {} (copied from {})\nhome {}, port base {}\n",
            unix_ms(),
            commit(&options.tree.repo()),
            options.rounds,
            options.seed,
            options.down_secs,
            options.steady_secs,
            WARM_UP.as_secs(),
            options.initial_stock,
            cluster.home.join("bin").display(),
            bins_from.display(),
            cluster.home.display(),
            options.port_base
        ),
    )?;

    let config = chaos_client(
        &frontend,
        iterations,
        options.seed,
        &raw.client_json,
        &raw.timeline,
    )?;
    let client = run_client(config, &raw.client_out);
    say.line(format!(
        "client started; first kill in {} s",
        WARM_UP.as_secs()
    ));
    let launch = unix_ms();
    say.pause(WARM_UP)?;

    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut events = Vec::new();
    let mut early = None;
    for round in 1..=options.rounds as usize {
        if client.is_finished() {
            early = Some(format!("the client finished before round {round}"));
            break;
        }
        let (leader, term) = wait_leader(&nodes, say)?
            .with_context(|| format!("round {round}: no Raft leader for 10 s"))?;
        let target = if round == 1 {
            leader
        } else {
            ids[rng.random_range(0..ids.len())]
        };
        let before = unix_ms();
        cluster.script("kill.sh", &[&target.to_string()])?;
        let kill = Event {
            round,
            kind: EventKind::Kill,
            node: target,
            was_leader: target == leader,
            leader: Some((leader, term)),
            unix_ms_before: before,
            unix_ms_after: unix_ms(),
        };
        say.pause(down)?;
        let new_leader = wait_leader(&nodes, say)?;
        let before = unix_ms();
        cluster.script("restart.sh", &[&target.to_string()])?;
        let restart = Event {
            round,
            kind: EventKind::Restart,
            node: target,
            was_leader: false,
            leader: new_leader,
            unix_ms_before: before,
            unix_ms_after: unix_ms(),
        };
        let restarted = Instant::now();
        let caught = loop {
            if caught_up(&nodes, target)? {
                break format!("{:.1} s", restarted.elapsed().as_secs_f64());
            }
            if restarted.elapsed() > CATCH_UP_TIMEOUT {
                break format!("no (after {} s)", CATCH_UP_TIMEOUT.as_secs());
            }
            say.pause(Duration::from_millis(200))?;
        };
        say.line(format!(
            "round {round}: killed node {target} ({}) at {:.1} s; leader then: node {}; restarted at {:.1} s; caught up: {caught}",
            if kill.was_leader { format!("the Raft leader, term {term}") } else { "a follower".to_owned() },
            (kill.unix_ms_after - launch) / 1000.0,
            new_leader.map_or("none".to_owned(), |(id, _)| id.to_string()),
            (restart.unix_ms_after - launch) / 1000.0,
        ));
        events.push(kill);
        events.push(restart);
        if round < options.rounds as usize {
            say.pause(steady)?;
        }
    }
    let lines: Vec<String> = events.iter().map(failover::event_line).collect();
    fs::write(
        &raw.events,
        format!("{EVENTS_HEADER}\n{}\n", lines.join("\n")),
    )?;

    say.line("rounds done; waiting for the client to finish …");
    let report = client
        .join()
        .map_err(|_| anyhow::anyhow!("the client panicked"))??;
    say.line(format!(
        "client finished ({})",
        if report.succeeded() {
            "ok"
        } else {
            "with errors"
        }
    ));
    let ended = Instant::now();
    let converged = converge(&nodes, say)?;

    let analysis = failover::analyse(&report.timeline, report.started_unix_ms, &events);
    let csv_path = data.join("failover.csv");
    let tmp = data.join("failover.csv.tmp");
    fs::write(&tmp, &analysis.csv)?;
    fs::rename(&tmp, &csv_path)?;
    say.text(&format!(
        "wrote {}: {} requests and {} events; time origin: the client's start",
        csv_path.display(),
        report.timeline.len(),
        events.len()
    ));
    say.text(&format!("\n{}", analysis.table));

    say.text("");
    let mut ok = true;
    let mut verdict = |pass: bool, text: String| {
        say.text(&format!(
            "{:<4}  {text}",
            if pass { "PASS" } else { "FAIL" }
        ));
        ok &= pass;
    };
    let totals = report.totals();
    let summary = format!(
        "{} requests, {} orders placed, {} request errors, {} verification failures",
        totals.requests, totals.orders_placed, totals.request_errors, totals.verification_failures
    );
    verdict(
        report.succeeded(),
        if report.succeeded() {
            format!("the client saw no error and every acknowledged order verified ({summary})")
        } else {
            format!(
                "the client failed ({summary}); see {}",
                raw.client_out.display()
            )
        },
    );
    let outlasted = early.is_none() && analysis.sessions_end > analysis.last_restart;
    verdict(
        outlasted,
        match &early {
            Some(why) => format!("{why}: raise --iterations"),
            None if outlasted => format!(
                "the sessions outlasted all {} rounds (last restart at {:.3} s, last query or order answered at {:.3} s)",
                options.rounds, analysis.last_restart, analysis.sessions_end
            ),
            None => format!(
                "the sessions stopped at {:.3} s, before the last restart at {:.3} s: raise --iterations",
                analysis.sessions_end, analysis.last_restart
            ),
        },
    );
    let agreed = converged.as_ref().and_then(agreement);
    verdict(
        agreed.is_some(),
        match &agreed {
            Some((applied, digest)) => format!(
                "all {} replicas agree: applied index {applied}, digest {}… (polled for {:.1} s after the client ended)",
                ids.len(),
                digest.chars().take(16).collect::<String>(),
                ended.elapsed().as_secs_f64()
            ),
            None => format!(
                "the replicas do not agree {} s after the client ended",
                CONVERGE_TIMEOUT.as_secs()
            ),
        },
    );
    if let Some(snapshot) = &converged {
        for view in &snapshot.replicas {
            let line = match &view.status {
                Some(s) => format!(
                    "      node {}: {:<9} applied {:<8} digest {}",
                    view.id,
                    s.role,
                    s.applied_index.map_or("-".to_owned(), |a| a.to_string()),
                    s.digest.chars().take(16).collect::<String>()
                ),
                None => format!("      node {}: down", view.id),
            };
            say.text(&line);
        }
    }
    Ok(ok)
}

/// The client's configuration for a chaos run against `frontend`.
fn chaos_client(
    frontend: &Url,
    iterations: u64,
    seed: u64,
    json: &Path,
    timeline: &Path,
) -> anyhow::Result<Config> {
    client_config(&[
        "--frontend".to_owned(),
        frontend.to_string(),
        "--clients".to_owned(),
        CLIENTS.to_string(),
        "--prob".to_owned(),
        PROB.to_owned(),
        "--iterations".to_owned(),
        iterations.to_string(),
        "--seed".to_owned(),
        seed.to_string(),
        "--out".to_owned(),
        json.display().to_string(),
        "--timeline".to_owned(),
        timeline.display().to_string(),
        "--quiet".to_owned(),
    ])
}

/// The leader, waiting up to 10 s for one.
fn wait_leader(nodes: &NodeAddrs, say: &Say) -> anyhow::Result<Option<(u64, u64)>> {
    let start = Instant::now();
    loop {
        if let Some(leader) = observe(nodes)?.leader() {
            return Ok(Some(leader));
        }
        if start.elapsed() > LEADER_TIMEOUT {
            return Ok(None);
        }
        say.pause(Duration::from_millis(200))?;
    }
}

/// Node `id` has applied at least what the leader had applied a moment before.
fn caught_up(nodes: &NodeAddrs, id: u64) -> anyhow::Result<bool> {
    let before = observe(nodes)?;
    let Some((leader, _)) = before.leader() else {
        return Ok(false);
    };
    if leader == id {
        return Ok(true);
    }
    let applied = |snapshot: &Snapshot, node| {
        snapshot
            .replicas
            .iter()
            .find(|r| r.id == node)
            .and_then(|r| r.status.as_ref())
            .and_then(|s| s.applied_index)
    };
    let Some(lead) = applied(&before, leader) else {
        return Ok(false);
    };
    std::thread::sleep(Duration::from_millis(100));
    Ok(applied(&observe(nodes)?, id).is_some_and(|a| a >= lead))
}

/// Polls until every replica answers with the same applied index and digest (up to 30 s);
/// the last answers.
fn converge(nodes: &NodeAddrs, say: &Say) -> anyhow::Result<Option<Snapshot>> {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() <= CONVERGE_TIMEOUT {
        let snapshot = observe(nodes)?;
        let done = agreement(&snapshot).is_some();
        last = Some(snapshot);
        if done {
            break;
        }
        say.pause(Duration::from_millis(500))?;
    }
    Ok(last)
}

/// The applied index and digest every replica reports, if they all answer and agree.
fn agreement(snapshot: &Snapshot) -> Option<(u64, String)> {
    let mut states = snapshot.replicas.iter().map(|r| {
        r.status
            .as_ref()
            .and_then(|s| Some((s.applied_index?, s.digest.clone())))
    });
    let first = states.next()??;
    states.all(|s| s.as_ref() == Some(&first)).then_some(first)
}
