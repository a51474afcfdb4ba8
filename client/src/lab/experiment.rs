//! `toystore-lab experiment` (and `cluster/experiment.sh`, its wrapper): the lab's evaluation.
//! The latency each client sees per request type, with the front-end's cache on and off, for
//! order probabilities p = 0, 0.2, 0.4, 0.6, 0.8.
//!
//! Each of the ten settings runs on a freshly wiped local cluster ([`super::local`]), cache on
//! and cache off (`TOYSTORE_NO_CACHE=1`) taking turns at each p, measured after an unmeasured
//! warm-up of 100 queries per session (p = 0, so no stock). The stock settings are the lab's
//! (initial stock 100, restock every 10 s) unless `TOYSTORE_INITIAL_STOCK` or
//! `TOYSTORE_RESTOCK_SECS` say otherwise; every `TOYSTORE_*` knob reaches the services.
//! Out-of-stock answers are not errors. Writes `DATA/latency.csv` (drawn by `plots`) and the
//! client's outputs per setting in `DATA/raw/`.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use super::local::{LocalCluster, client_config, commit, observe_frontend, prepare, run_client};
use super::options::on_off;
use super::say::Say;
use super::tree::Tree;
use crate::history::unix_ms;
use crate::{Report, RequestKind};

/// The order probabilities measured.
const PROBS: [&str; 5] = ["0", "0.2", "0.4", "0.6", "0.8"];
/// Unmeasured queries per session before each measured run (p = 0: no stock is used), so
/// that it starts on a settled cluster with the front-end's connections open and its cache
/// filled.
const WARM_UP_ITERATIONS: u64 = 100;

/// `toystore-lab experiment`'s options.
#[derive(Clone, Debug, Args)]
pub struct ExperimentOptions {
    /// Queries per client session in each setting (at p = 0.8 the five sessions then order
    /// ~1600 units, fewer than the 1800 in stock, so p stays the order probability).
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u64).range(1..))]
    pub iterations: u64,
    /// Concurrent client sessions.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub clients: u32,
    /// Seed of the client's random choices, the same in every setting.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Where the results go (default <repo>/plots/data).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// The experiment cluster's run directory (default <repo>/run/experiment; its data is
    /// wiped before every setting).
    #[arg(long, env = "TOYSTORE_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Its ports: front-end BASE, catalog BASE+100, replicas BASE+201…
    #[arg(long, env = "TOYSTORE_PORT_BASE", default_value_t = 8600)]
    pub port_base: u16,
    #[command(flatten)]
    pub tree: Tree,
}

/// One measured setting.
pub struct Setting {
    pub cache: bool,
    pub p: &'static str,
    pub report: Report,
}

/// Runs the ten settings; `Ok(false)` when one failed.
pub fn run(options: &ExperimentOptions, say: &Say) -> anyhow::Result<bool> {
    if std::env::var("TOYSTORE_CACHE_CAPACITY").is_ok_and(|v| v.trim().parse() == Ok(0u64)) {
        bail!(
            "TOYSTORE_CACHE_CAPACITY=0 turns the cache off in the 'cache on' settings too; unset it"
        );
    }
    let (cluster, dirs) = prepare(
        &options.tree,
        "experiment",
        options.home.as_deref(),
        options.data.as_deref(),
        "latency-",
        options.port_base,
        "cluster.log",
    )?;
    let (data, raw, bins_from) = (dirs.data, dirs.raw, dirs.bins_from);
    let (home, bin) = (cluster.home.clone(), cluster.home.join("bin"));
    let repo = options.tree.repo();
    let knob = |key: &str, default: &str| {
        std::env::var(key).unwrap_or_else(|_| format!("{default} (default)"))
    };
    fs::write(
        raw.join("params.txt"),
        format!(
            "toystore-lab experiment run at Unix ms {:.0}\ncommit {}\niterations {}, clients {}, seed {}\ninitial stock {}, restock every {} s, cache capacity {}\nbinaries {} (copied from {})\nhome {}, port base {}\n",
            unix_ms(),
            commit(&repo),
            options.iterations,
            options.clients,
            options.seed,
            knob("TOYSTORE_INITIAL_STOCK", "100"),
            knob("TOYSTORE_RESTOCK_SECS", "10"),
            knob("TOYSTORE_CACHE_CAPACITY", "10"),
            bin.display(),
            bins_from.display(),
            home.display(),
            options.port_base
        ),
    )?;

    let total = PROBS.len() * 2;
    say.line(format!(
        "experiment: {} client sessions x {} iterations, seed {}, p in {{{}}}, cache on and off ({total} settings)",
        options.clients,
        options.iterations,
        options.seed,
        PROBS.join(" ")
    ));
    say.line(format!(
        "  cluster in {}, front-end port {}; results: {}, raw files in {}",
        home.display(),
        options.port_base,
        data.join("latency.csv").display(),
        raw.display()
    ));
    let started = Instant::now();
    let mut settings = Vec::new();
    let mut failed = 0;
    for (index, (p, cache)) in PROBS
        .iter()
        .flat_map(|p| [(*p, true), (*p, false)])
        .enumerate()
    {
        // A setting in progress finishes (SIGINT ends its client's sessions early); the next
        // one does not start.
        say.pause(Duration::ZERO)?;
        let one = Instant::now();
        let name = format!("latency-cache-{}-p{p}", on_off(cache));
        let outcome = setting(options, &cluster, &raw, &name, p, cache);
        let head = format!(
            "[{:2}/{total}] p={p:<3} cache {:<3}",
            index + 1,
            on_off(cache)
        );
        let clock = mmss(started.elapsed().as_secs());
        match outcome {
            Ok(report) if report.succeeded() => {
                let totals = report.totals();
                let s = report.summaries();
                say.text(&format!(
                    "{head}  ok      {:5.1} s (client {:4.1} s)  {:6} requests, {:5} orders, {:4} out of stock  p50 query {} / order {} / lookup {} ms  [{clock}]",
                    one.elapsed().as_secs_f64(),
                    totals.wall_time_s,
                    totals.requests,
                    totals.orders_placed,
                    totals.out_of_stock,
                    p50(s.query.count, s.query.p50_ms),
                    p50(s.order.count, s.order.p50_ms),
                    p50(s.lookup.count, s.lookup.p50_ms),
                ));
                settings.push(Setting { cache, p, report });
            }
            Ok(report) => {
                failed += 1;
                let totals = report.totals();
                say.text(&format!(
                    "{head}  FAILED  {:5.1} s: {} request errors, {} verification failures (see {})  [{clock}]",
                    one.elapsed().as_secs_f64(),
                    totals.request_errors,
                    totals.verification_failures,
                    raw.join(format!("{name}.out")).display()
                ));
            }
            Err(error) => {
                failed += 1;
                say.text(&format!(
                    "{head}  FAILED  {:5.1} s: {error:#}  [{clock}]",
                    one.elapsed().as_secs_f64()
                ));
            }
        }
    }
    if let Err(error) = cluster.script("down.sh", &[]) {
        say.line(format!("warning: cluster/down.sh failed: {error:#}"));
    }

    let csv = latency_csv(&settings);
    let path = data.join("latency.csv");
    let tmp = data.join("latency.csv.tmp");
    fs::write(&tmp, &csv)?;
    fs::rename(&tmp, &path)?;
    say.text(&format!("\n{}", summary_table(&settings)));
    say.text(&format!(
        "wrote {} ({} rows)",
        path.display(),
        csv.lines().count() - 1
    ));
    say.line(format!(
        "wall time: {} (m:ss)",
        mmss(started.elapsed().as_secs())
    ));
    if failed > 0 {
        say.text(&format!(
            "{failed} of {total} settings failed (see above and {})",
            raw.display()
        ));
    }
    Ok(failed == 0)
}

/// One setting: a fresh cluster, the warm-up, the measured run (its summary, CSV and report in
/// `raw/NAME.{json,csv,out}`).
fn setting(
    options: &ExperimentOptions,
    cluster: &LocalCluster,
    raw: &Path,
    name: &str,
    p: &str,
    cache: bool,
) -> anyhow::Result<Report> {
    let no_cache = if cache { None } else { Some("1") };
    cluster.script("down.sh", &["--wipe"])?;
    cluster.script_with("up.sh", &[], &[("TOYSTORE_NO_CACHE", no_cache)])?;
    let frontend = cluster.addresses()?.frontend;
    let capacity = observe_frontend(&frontend)?
        .frontend
        .and_then(Result::ok)
        .map(|status| status.cache.capacity)
        .context("the front-end's /status does not answer")?;
    if cache == (capacity == 0) {
        bail!(
            "the front-end runs with a cache of {capacity} although the setting is 'cache {}'",
            on_off(cache)
        );
    }
    let args = |p: &str, iterations: u64, seed: u64| {
        vec![
            "--frontend".to_owned(),
            frontend.to_string(),
            "--clients".to_owned(),
            options.clients.to_string(),
            "--prob".to_owned(),
            p.to_owned(),
            "--iterations".to_owned(),
            iterations.to_string(),
            "--seed".to_owned(),
            seed.to_string(),
            "--quiet".to_owned(),
        ]
    };
    let warm_up = client_config(&args("0", WARM_UP_ITERATIONS, options.seed + 1))?;
    let report = run_client(warm_up, &raw.join(format!("{name}.warmup.out")))
        .join()
        .map_err(|_| anyhow::anyhow!("the warm-up client panicked"))??;
    if !report.succeeded() {
        bail!(
            "the warm-up queries failed (see {})",
            raw.join(format!("{name}.warmup.out")).display()
        );
    }
    let mut measured = args(p, options.iterations, options.seed);
    measured.extend([
        "--out".to_owned(),
        raw.join(format!("{name}.json")).display().to_string(),
    ]);
    let report = run_client(client_config(&measured)?, &raw.join(format!("{name}.out")))
        .join()
        .map_err(|_| anyhow::anyhow!("the client panicked"))??;
    let mut csv = Vec::new();
    crate::output::write_summary_csv(&mut csv, &report)?;
    fs::write(raw.join(format!("{name}.csv")), csv)?;
    Ok(report)
}

/// `latency.csv`: cache,p,kind,count,errors,p50_ms,p90_ms,p99_ms,mean_ms per setting and
/// kind, cache on first.
pub fn latency_csv(settings: &[Setting]) -> String {
    let mut out = String::from("cache,p,kind,count,errors,p50_ms,p90_ms,p99_ms,mean_ms\n");
    for cache in [true, false] {
        for setting in settings.iter().filter(|s| s.cache == cache) {
            let summaries = setting.report.summaries();
            for kind in RequestKind::ALL {
                let s = summaries.get(kind);
                let _ = writeln!(
                    out,
                    "{},{},{kind},{},{},{:.3},{:.3},{:.3},{:.3}",
                    on_off(cache),
                    setting.p,
                    s.count,
                    s.errors,
                    s.p50_ms,
                    s.p90_ms,
                    s.p99_ms,
                    s.mean_ms
                );
            }
        }
    }
    out
}

/// The summary: p50 / p99 per kind and setting, then the cache's effect on the query median.
pub fn summary_table(settings: &[Setting]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<6}{:>4}  {:>16}  {:>16}  {:>17}  {:>7}  {:>12}  {:>6}  {:>8}",
        "cache",
        "p",
        "query p50 / p99",
        "order p50 / p99",
        "lookup p50 / p99",
        "orders",
        "out of stock",
        "errors",
        "client s"
    );
    let mut ordered: Vec<&Setting> = settings.iter().filter(|s| s.cache).collect();
    ordered.extend(settings.iter().filter(|s| !s.cache));
    for setting in &ordered {
        let summaries = setting.report.summaries();
        let cell = |kind| {
            let s = summaries.get(kind);
            if s.count == 0 {
                "-".to_owned()
            } else {
                format!("{:.2} / {:.2}", s.p50_ms, s.p99_ms)
            }
        };
        let totals = setting.report.totals();
        let _ = writeln!(
            out,
            "{:<6}{:>4}  {:>16}  {:>16}  {:>17}  {:>7}  {:>12}  {:>6}  {:>8.1}",
            on_off(setting.cache),
            setting.p,
            cell(RequestKind::Query),
            cell(RequestKind::Order),
            cell(RequestKind::Lookup),
            totals.orders_placed,
            totals.out_of_stock,
            totals.request_errors + totals.verification_failures,
            totals.wall_time_s
        );
    }
    out.push_str("(latencies in ms; errors = request errors + verification failures)\n");
    let ratios: Vec<String> = PROBS
        .iter()
        .filter_map(|p| {
            let median = |cache| {
                settings
                    .iter()
                    .find(|s| s.cache == cache && s.p == *p)
                    .map(|s| s.report.summaries().query)
                    .filter(|q| q.count > 0 && q.p50_ms > 0.0)
                    .map(|q| q.p50_ms)
            };
            Some(format!("p={p}: {:.1}x", median(false)? / median(true)?))
        })
        .collect();
    if !ratios.is_empty() {
        let _ = writeln!(
            out,
            "query median, cache off / cache on: {}",
            ratios.join(", ")
        );
    }
    out
}

fn p50(count: u64, ms: f64) -> String {
    if count > 0 {
        format!("{ms:.2}")
    } else {
        "-".to_owned()
    }
}

/// m:ss of `secs`.
fn mmss(secs: u64) -> String {
    format!("{}:{:02}", secs / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::report::tests::sample_report;

    fn settings() -> Vec<Setting> {
        let mut slow = sample_report();
        for ms in [5, 6, 7, 8] {
            slow.latency
                .query
                .record(std::time::Duration::from_millis(ms));
        }
        vec![
            Setting {
                cache: false,
                p: "0.2",
                report: slow,
            },
            Setting {
                cache: true,
                p: "0.2",
                report: sample_report(),
            },
        ]
    }

    #[test]
    fn latency_csv_has_a_row_per_kind_and_setting_cache_on_first() {
        let csv = latency_csv(&settings());
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "cache,p,kind,count,errors,p50_ms,p90_ms,p99_ms,mean_ms"
        );
        assert_eq!(lines.len(), 7, "{csv}");
        assert!(lines[1].starts_with("on,0.2,query,4,0,"), "{csv}");
        assert!(lines[3].starts_with("on,0.2,lookup,1,0,"), "{csv}");
        assert!(lines[4].starts_with("off,0.2,query,8,0,"), "{csv}");
    }

    #[test]
    fn the_summary_gives_the_cache_effect_on_the_query_median() {
        let table = summary_table(&settings());
        assert!(
            table.lines().nth(1).is_some_and(|l| l.starts_with("on ")),
            "{table}"
        );
        let ratio = table
            .lines()
            .find_map(|l| l.strip_prefix("query median, cache off / cache on: p=0.2: "))
            .expect("a ratio line");
        let ratio: f64 = ratio.trim_end_matches('x').parse().expect("a number");
        assert!(ratio > 1.0, "{table}");
    }

    #[test]
    fn minutes_and_seconds() {
        assert_eq!(mmss(0), "0:00");
        assert_eq!(mmss(61), "1:01");
        assert_eq!(mmss(600), "10:00");
    }
}
