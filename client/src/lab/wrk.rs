//! What `wrk --latency` printed, read for `cluster/bench.sh` (`toystore-lab wrk …`): one
//! run's line, the etcd comparison's table over rounds with the store/etcd ratios, and the
//! cache benchmark's medians over alternating runs. A run's throughput counts only 2xx answers
//! (wrk's "Non-2xx or 3xx responses" are subtracted) over its measured duration.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{Context, bail};

/// The etcd comparison's measurements, in the order they are printed: file stem, description.
const MEASUREMENTS: [(&str, &str); 7] = [
    ("store-order-c1", "store  POST /orders, 1 connection"),
    ("store-order-c64", "store  POST /orders, 64 connections"),
    ("store-read-c64", "store  GET /orders/0, 64 connections"),
    ("etcd-put-c1", "etcd   put, 1 connection"),
    ("etcd-put-c64", "etcd   put, 64 connections"),
    ("etcd-range-c1", "etcd   linearizable range, 1 connection"),
    (
        "etcd-range-c64",
        "etcd   linearizable range, 64 connections",
    ),
];

/// Which figure of a run a ratio compares.
#[derive(Clone, Copy)]
enum Figure {
    Rps,
    P50,
}

/// The ratios: description, store measurement, etcd measurement, figure, unit.
const RATIOS: [(&str, &str, &str, Figure, &str); 3] = [
    (
        "orders/s c64 / etcd puts/s c64",
        "store-order-c64",
        "etcd-put-c64",
        Figure::Rps,
        "x",
    ),
    (
        "order p50 c1 / etcd put p50 c1",
        "store-order-c1",
        "etcd-put-c1",
        Figure::P50,
        "",
    ),
    (
        "order reads/s c64 / etcd linearizable ranges/s c64",
        "store-read-c64",
        "etcd-range-c64",
        Figure::Rps,
        "x",
    ),
];

/// The figures of one wrk run.
#[derive(Clone, Debug, PartialEq)]
pub struct WrkRun {
    pub requests: u64,
    pub seconds: f64,
    pub non2xx: u64,
    pub socket_errors: u64,
    /// 2xx answers per second.
    pub rps: f64,
    /// Latency percentiles in ms, when wrk printed them.
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

impl WrkRun {
    /// Reads `wrk --latency` output.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (requests, seconds) = text
            .lines()
            .find_map(total)
            .ok_or("no 'N requests in T' line: did wrk run?")?;
        let non2xx = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        let socket_errors = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Socket errors:"))
            .map_or(0, |rest| {
                rest.split(',')
                    .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                    .sum()
            });
        let rps = if seconds > 0.0 {
            requests.saturating_sub(non2xx) as f64 / seconds
        } else {
            0.0
        };
        Ok(Self {
            requests,
            seconds,
            non2xx,
            socket_errors,
            rps,
            p50: percentile(text, "50%"),
            p99: percentile(text, "99%"),
        })
    }

    /// Requests that failed: non-2xx answers and socket errors.
    pub fn failed(&self) -> u64 {
        self.non2xx + self.socket_errors
    }

    fn figure(&self, figure: Figure) -> Option<f64> {
        match figure {
            Figure::Rps => Some(self.rps),
            Figure::P50 => self.p50,
        }
    }

    /// One line: requests/s, p50, p99, and the failures if any.
    pub fn line(&self) -> String {
        let failed = if self.failed() > 0 {
            format!(
                ", {} non-2xx, {} socket errors",
                self.non2xx, self.socket_errors
            )
        } else {
            String::new()
        };
        format!(
            "{:9.0} req/s  p50 {} ms  p99 {} ms{failed}",
            self.rps,
            ms(self.p50, 6),
            ms(self.p99, 6)
        )
    }
}

/// "  1389 requests in 1.00s, 705.53KB read" -> (1389, 1.0).
fn total(line: &str) -> Option<(u64, f64)> {
    let mut words = line.split_whitespace();
    let requests = words.next()?.parse().ok()?;
    if words.next()? != "requests" || words.next()? != "in" {
        return None;
    }
    let duration = words.next()?.trim_end_matches(',');
    Some((
        requests,
        duration_in(
            duration,
            &[("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0)],
        )?,
    ))
}

/// A latency percentile from wrk's "Latency Distribution" (`     50%    1.27ms`), in ms.
fn percentile(text: &str, pct: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next()? == pct).then_some(())?;
        duration_in(
            words.next()?,
            &[
                ("us", 1e-3),
                ("ms", 1.0),
                ("s", 1e3),
                ("m", 60e3),
                ("h", 3600e3),
            ],
        )
    })
}

/// `1.27ms` in the units of `scale` (suffix, factor); the longest matching suffix wins.
fn duration_in(text: &str, scale: &[(&str, f64)]) -> Option<f64> {
    let (number, factor) = scale
        .iter()
        .filter_map(|(unit, factor)| Some((text.strip_suffix(unit)?, *factor)))
        .filter(|(number, _)| number.parse::<f64>().is_ok())
        .min_by_key(|(number, _)| number.len())?;
    Some(number.parse::<f64>().ok()? * factor)
}

fn ms(value: Option<f64>, width: usize) -> String {
    value.map_or_else(|| format!("{:>width$}", "n/a"), |v| format!("{v:width$.2}"))
}

/// The runs of `DIR/round-N/STEM.txt`, one map per round in round order.
pub fn read_rounds(dir: &Path) -> anyhow::Result<Vec<BTreeMap<&'static str, WrkRun>>> {
    let mut numbered = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        let number = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("round-"))
            .and_then(|n| n.parse::<u32>().ok());
        if let (Some(number), true) = (number, path.is_dir()) {
            numbered.push((number, path));
        }
    }
    if numbered.is_empty() {
        bail!("no round-* folders in {}", dir.display());
    }
    numbered.sort();
    numbered
        .iter()
        .map(|(_, folder)| {
            let mut runs = BTreeMap::new();
            for (stem, _) in MEASUREMENTS {
                let path = folder.join(format!("{stem}.txt"));
                if path.exists() {
                    let text = fs::read_to_string(&path)?;
                    let run = WrkRun::parse(&text)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                    runs.insert(stem, run);
                }
            }
            Ok(runs)
        })
        .collect()
}

/// "median (min–max)" of `values`.
fn spread(values: &[f64], decimals: usize) -> String {
    let Some(mid) = median(values) else {
        return "n/a".to_owned();
    };
    if values.len() == 1 {
        return format!("{mid:.decimals$}");
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{mid:.decimals$} ({min:.decimals$}–{max:.decimals$})")
}

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// The etcd comparison: every measurement's median and range over the rounds, then each
/// store/etcd ratio per round with its median and range. `false` when a ratio is missing or
/// a request failed.
pub fn table(rounds: &[BTreeMap<&'static str, WrkRun>]) -> (String, bool) {
    let mut out = String::new();
    let n = rounds.len();
    let _ = writeln!(
        out,
        "measurements: median (min–max) over {n} round{}",
        if n > 1 { "s" } else { "" }
    );
    let _ = writeln!(
        out,
        "  {:<42} {:>22} {:>22} {:>22}  failed",
        "", "requests/s", "p50 ms", "p99 ms"
    );
    for (stem, name) in MEASUREMENTS {
        let mine: Vec<&WrkRun> = rounds.iter().filter_map(|r| r.get(stem)).collect();
        if mine.is_empty() {
            continue;
        }
        let column = |f: &dyn Fn(&WrkRun) -> Option<f64>| -> Vec<f64> {
            mine.iter().filter_map(|r| f(r)).collect()
        };
        let _ = writeln!(
            out,
            "  {name:<42} {:>22} {:>22} {:>22}  {}",
            spread(&column(&|r| Some(r.rps)), 0),
            spread(&column(&|r| r.p50), 2),
            spread(&column(&|r| r.p99), 2),
            mine.iter().map(|r| r.failed()).sum::<u64>()
        );
    }
    let _ = writeln!(out, "\nratios (store / etcd), each within one round:");
    let head: String = (1..=n)
        .map(|i| format!("{:>9}", format!("round {i}")))
        .collect();
    let _ = writeln!(out, "  {:<52}{head}   {:>7}  range", "", "median");
    let mut complete = true;
    for (name, store, etcd, figure, unit) in RATIOS {
        let values: Vec<Option<f64>> = rounds
            .iter()
            .map(|r| {
                let a = r.get(store)?.figure(figure)?;
                let b = r.get(etcd)?.figure(figure)?;
                (b > 0.0).then_some(a / b)
            })
            .collect();
        let cells: String = values
            .iter()
            .map(|v| v.map_or_else(|| format!("{:>9}", "n/a"), |v| format!("{v:9.2}")))
            .collect();
        let good: Vec<f64> = values.iter().flatten().copied().collect();
        let (mid, range) = match median(&good) {
            Some(mid) => {
                let min = good.iter().copied().fold(f64::INFINITY, f64::min);
                let max = good.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                (
                    format!("{mid:.2}{unit}"),
                    format!("{min:.2}–{max:.2}{unit}"),
                )
            }
            None => {
                complete = false;
                ("n/a".to_owned(), "n/a".to_owned())
            }
        };
        let _ = writeln!(out, "  {name:<52}{cells}   {mid:>7}  {range}");
    }
    let failed: u64 = rounds
        .iter()
        .flat_map(|r| r.values())
        .map(WrkRun::failed)
        .sum();
    if failed > 0 {
        let _ = writeln!(
            out,
            "\nwarning: {failed} requests failed (non-2xx answers or socket errors); throughput counts only the 2xx answers"
        );
    }
    (out, complete && failed == 0)
}

/// The cache benchmark: wrk runs under `--- NAME` headings, alternating servers; per server
/// the medians of requests/s, p50 and p99, and the second server's throughput as a share of
/// the first's.
pub fn medians(text: &str) -> Result<String, String> {
    let mut by_server: Vec<(String, Vec<WrkRun>)> = Vec::new();
    // Each run starts with a `--- NAME` line; whatever comes before the first is not a run.
    let text = format!("\n{text}");
    for section in text.split("\n--- ").skip(1) {
        let (name, body) = section.split_once('\n').unwrap_or((section, ""));
        let run = WrkRun::parse(body).map_err(|e| format!("{name}: {e}"))?;
        match by_server.iter_mut().find(|(n, _)| n == name) {
            Some((_, runs)) => runs.push(run),
            None => by_server.push((name.to_owned(), vec![run])),
        }
    }
    let rounds = by_server.first().map_or(0, |(_, runs)| runs.len());
    let mut out = format!(
        "{:<20} {:>11} {:>8} {:>8}   (medians of {rounds} rounds)\n",
        "server", "requests/s", "p50_ms", "p99_ms"
    );
    let mut rps = Vec::new();
    for (name, runs) in &by_server {
        let column = |f: &dyn Fn(&WrkRun) -> Option<f64>| {
            median(&runs.iter().filter_map(f).collect::<Vec<_>>())
        };
        let r = column(&|r| Some(r.rps)).unwrap_or(0.0);
        rps.push(r);
        let _ = writeln!(
            out,
            "{name:<20} {r:>11.0} {} {}",
            ms(column(&|r| r.p50), 8),
            ms(column(&|r| r.p99), 8)
        );
    }
    match rps[..] {
        [bare, front, ..] if bare > 0.0 => {
            let _ = writeln!(
                out,
                "front-end / bare: {:.0}% of the bare handler's throughput",
                100.0 * front / bare
            );
        }
        _ => return Err("need runs of two servers".to_owned()),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real output of `wrk -t1 -c2 -d1s --latency` against a server answering 404.
    const NOT_FOUND: &str = "Running 1s test @ http://127.0.0.1:18555/nonexistent
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.52ms    1.24ms  14.00ms   95.39%
    Req/Sec     1.40k   123.13     1.69k    80.00%
  Latency Distribution
     50%    1.27ms
     75%    1.69ms
     90%    2.17ms
     99%    8.23ms
  1389 requests in 1.00s, 705.53KB read
  Non-2xx or 3xx responses: 1389
Requests/sec:   1386.80
Transfer/sec:    704.41KB
";

    fn ok_run(requests: u64, p50: &str) -> String {
        format!(
            "  Latency Distribution\n     50%    {p50}\n     99%    2.5ms\n  {requests} requests in 2.00s, 1MB read\n"
        )
    }

    #[test]
    fn a_run_counts_only_2xx_answers_and_reads_the_percentiles() {
        let run = WrkRun::parse(NOT_FOUND).expect("wrk output");
        assert_eq!((run.requests, run.non2xx, run.failed()), (1389, 1389, 1389));
        assert_eq!(run.rps, 0.0);
        assert_eq!(run.p50, Some(1.27));
        assert_eq!(run.p99, Some(8.23));
        let fine = WrkRun::parse(&ok_run(3000, "850.00us")).expect("wrk output");
        assert_eq!(fine.rps, 1500.0);
        assert!((fine.p50.unwrap_or_default() - 0.85).abs() < 1e-9);
        assert!(WrkRun::parse("wrk: connection refused").is_err());
        let errors = WrkRun::parse(
            &(ok_run(10, "1ms") + "  Socket errors: connect 1, read 2, write 0, timeout 4\n"),
        )
        .expect("wrk output");
        assert_eq!(errors.failed(), 7);
        assert!(
            errors.line().ends_with(", 0 non-2xx, 7 socket errors"),
            "{}",
            errors.line()
        );
    }

    #[test]
    fn the_table_gives_each_ratio_per_round_and_fails_without_one() {
        let round = |store_c64: u64, etcd_c64: u64| {
            let mut runs = BTreeMap::new();
            for (stem, requests, p50) in [
                ("store-order-c1", 100, "2ms"),
                ("store-order-c64", store_c64, "10ms"),
                ("store-read-c64", 8000, "1ms"),
                ("etcd-put-c1", 200, "1ms"),
                ("etcd-put-c64", etcd_c64, "10ms"),
                ("etcd-range-c64", 1000, "1ms"),
            ] {
                runs.insert(stem, WrkRun::parse(&ok_run(requests, p50)).expect("run"));
            }
            runs
        };
        let (text, ok) = table(&[round(1200, 1000), round(1500, 1000), round(1300, 1000)]);
        assert!(ok, "{text}");
        let orders = text
            .lines()
            .find(|l| l.contains("orders/s c64 / etcd"))
            .expect("a ratio row");
        assert!(
            orders.contains("1.20     1.50     1.30     1.30x  1.20–1.50x"),
            "{orders}"
        );
        let p50 = text
            .lines()
            .find(|l| l.contains("order p50 c1"))
            .expect("a ratio row");
        assert!(p50.trim_end().ends_with("2.00  2.00–2.00"), "{p50}");
        let mut partial = round(1200, 1000);
        partial.remove("etcd-range-c64");
        assert!(!table(&[partial]).1);
    }

    #[test]
    fn the_cache_medians_compare_the_second_server_with_the_first() {
        let text = format!(
            "--- bare\n{}--- front-end\n{}--- bare\n{}--- front-end\n{}--- bare\n{}--- front-end\n{}",
            ok_run(2000, "1ms"),
            ok_run(1000, "2ms"),
            ok_run(4000, "1ms"),
            ok_run(1500, "2ms"),
            ok_run(3000, "1ms"),
            ok_run(1200, "2ms"),
        );
        let out = medians(&text).expect("two servers");
        assert!(out.contains("(medians of 3 rounds)"), "{out}");
        assert!(
            out.lines()
                .nth(1)
                .is_some_and(|l| l.starts_with("bare") && l.contains(" 1500 ")),
            "{out}"
        );
        assert!(
            out.contains("front-end / bare: 40% of the bare handler's throughput"),
            "{out}"
        );
        assert!(medians(&format!("--- bare\n{}", ok_run(10, "1ms"))).is_err());
    }
}
