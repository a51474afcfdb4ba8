//! Reading the evaluation CSVs (`latency.csv`, `failover.csv`) into typed rows.
//!
//! Every problem with a file (missing, unreadable, a missing column, a malformed or
//! contradictory row) is an error that names the file and, where there is one, the line.
//! Nothing read from a file is unwrapped.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Whether the front end's product cache was enabled during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cache {
    On,
    Off,
}

impl Cache {
    pub const ALL: [Cache; 2] = [Cache::On, Cache::Off];
}

impl fmt::Display for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cache::On => "cache on",
            Cache::Off => "cache off",
        })
    }
}

/// The three request types the clients send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `GET /products/{name}`
    Query,
    /// `POST /orders`
    Order,
    /// `GET /orders/{n}`
    Lookup,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Query, Kind::Order, Kind::Lookup];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Query => "query",
            Kind::Order => "order",
            Kind::Lookup => "lookup",
        }
    }
}

/// One row of `latency.csv`: the latency summary of one request type in one run.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LatencyRow {
    pub cache: Cache,
    /// Probability that a session orders after a query, 0 to 1.
    pub p: f64,
    pub kind: Kind,
    /// Number of requests measured; 0 means the point does not exist (no orders at p = 0).
    pub count: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
}

const LATENCY_COLUMNS: &[&str] = &[
    "cache", "p", "kind", "count", "errors", "p50_ms", "p90_ms", "p99_ms", "mean_ms",
];

/// One HTTP request of the failover run.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Seconds since the start of the run when the request was sent.
    pub time_s: f64,
    pub kind: Kind,
    pub latency_ms: f64,
    /// HTTP status, 0 when no answer came.
    pub status: u16,
    pub session: u32,
}

impl Request {
    /// Failed: no answer, or any status other than 200 and the expected 400/404 answers.
    pub fn failed(&self) -> bool {
        !matches!(self.status, 200 | 400 | 404)
    }
}

/// A fault injected during the failover run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    Kill,
    Restart,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub time_s: f64,
    pub kind: FaultKind,
    /// The replica id that was killed or restarted.
    pub node: String,
}

/// `failover.csv` split into its two kinds of rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Failover {
    pub requests: Vec<Request>,
    pub faults: Vec<Fault>,
}

const FAILOVER_COLUMNS: &[&str] = &["time_s", "kind", "latency_ms", "status", "session", "node"];

/// A failover row as written: which fields must be set depends on `kind`.
#[derive(Debug, Deserialize)]
struct RawFailoverRow {
    time_s: f64,
    kind: String,
    latency_ms: Option<f64>,
    status: Option<u16>,
    session: Option<u32>,
    node: Option<String>,
}

/// Reads `latency.csv`; rows keep the file's order.
pub fn read_latency(path: &Path) -> Result<Vec<LatencyRow>> {
    let mut first_seen: HashMap<(Cache, u64, Kind), u64> = HashMap::new();
    let mut rows = Vec::new();
    for_each_row(path, LATENCY_COLUMNS, |line, row: LatencyRow| {
        if !(0.0..=1.0).contains(&row.p) {
            bail!("p = {} is not a probability between 0 and 1", row.p);
        }
        for (name, value) in [
            ("p50_ms", row.p50_ms),
            ("p90_ms", row.p90_ms),
            ("p99_ms", row.p99_ms),
            ("mean_ms", row.mean_ms),
        ] {
            if !value.is_finite() || value < 0.0 {
                bail!("{name} = {value} is not a latency in ms");
            }
        }
        let key = (row.cache, row.p.to_bits(), row.kind);
        if let Some(first) = first_seen.insert(key, line) {
            bail!(
                "second row for {}, p = {}, kind {} (the first is on line {first})",
                row.cache,
                row.p,
                row.kind.name()
            );
        }
        rows.push(row);
        Ok(())
    })?;
    Ok(rows)
}

/// Reads `failover.csv`, separating requests from kill/restart events.
pub fn read_failover(path: &Path) -> Result<Failover> {
    let mut out = Failover::default();
    for_each_row(path, FAILOVER_COLUMNS, |_line, raw: RawFailoverRow| {
        if !raw.time_s.is_finite() || raw.time_s < 0.0 {
            bail!("time_s = {} is not a time since the start", raw.time_s);
        }
        let kind = match raw.kind.as_str() {
            "query" => Some(Kind::Query),
            "order" => Some(Kind::Order),
            "lookup" => Some(Kind::Lookup),
            "kill" | "restart" => None,
            other => {
                bail!("unknown kind \"{other}\" (expected query, order, lookup, kill or restart)")
            }
        };
        match kind {
            Some(kind) => {
                let latency_ms = raw
                    .latency_ms
                    .ok_or_else(|| anyhow!("a {} request needs latency_ms", raw.kind))?;
                if !latency_ms.is_finite() || latency_ms < 0.0 {
                    bail!("latency_ms = {latency_ms} is not a latency in ms");
                }
                out.requests.push(Request {
                    time_s: raw.time_s,
                    kind,
                    latency_ms,
                    status: raw
                        .status
                        .ok_or_else(|| anyhow!("a {} request needs status", raw.kind))?,
                    session: raw
                        .session
                        .ok_or_else(|| anyhow!("a {} request needs session", raw.kind))?,
                });
            }
            None => {
                let node = raw
                    .node
                    .filter(|node| !node.is_empty())
                    .ok_or_else(|| anyhow!("a {} event needs node", raw.kind))?;
                out.faults.push(Fault {
                    time_s: raw.time_s,
                    kind: if raw.kind == "kill" {
                        FaultKind::Kill
                    } else {
                        FaultKind::Restart
                    },
                    node,
                });
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// Opens `path`, checks its header has `columns`, and hands each row, deserialised, to
/// `each` with its line number. Errors name the file and line.
fn for_each_row<T: DeserializeOwned>(
    path: &Path,
    columns: &[&str],
    mut each: impl FnMut(u64, T) -> Result<()>,
) -> Result<()> {
    let file = path.display();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("{file}: cannot open"))?;
    let headers = reader
        .headers()
        .map_err(|e| located(path, &e, None, None))?
        .clone();
    for column in columns {
        if !headers.iter().any(|h| h == *column) {
            bail!(
                "{file}: line 1: missing column `{column}` (the header must be {})",
                columns.join(",")
            );
        }
    }
    for record in reader.records() {
        let record = record.map_err(|e| located(path, &e, Some(&headers), None))?;
        let line = record.position().map_or(0, csv::Position::line);
        let row: T = record
            .deserialize(Some(&headers))
            .map_err(|e| located(path, &e, Some(&headers), Some(&record)))?;
        each(line, row).map_err(|e| anyhow!("{file}: line {line}: {e}"))?;
    }
    Ok(())
}

/// Turns a csv error into "FILE: line N: what", naming the column and its value where
/// csv tells which field it was.
fn located(
    path: &Path,
    err: &csv::Error,
    headers: Option<&csv::StringRecord>,
    record: Option<&csv::StringRecord>,
) -> anyhow::Error {
    let file = path.display();
    let line = err
        .position()
        .map_or(String::new(), |pos| format!(" line {}:", pos.line()));
    let what = match err.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields where the header has {expected_len}"),
        csv::ErrorKind::Deserialize { err, .. } => {
            let field = err.field().and_then(|i| usize::try_from(i).ok());
            let name = field.and_then(|i| headers?.get(i));
            let value = field.and_then(|i| record?.get(i));
            let column = match (name, value) {
                (Some(name), Some(value)) => format!("column `{name}` = \"{value}\": "),
                (Some(name), None) => format!("column `{name}`: "),
                _ => String::new(),
            };
            format!("{column}{}", err.kind())
        }
        csv::ErrorKind::Utf8 { err, .. } => format!("not UTF-8 ({err})"),
        _ => err.to_string(),
    };
    anyhow!("{file}:{line} {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write test csv");
        path
    }

    const LATENCY_HEADER: &str = "cache,p,kind,count,errors,p50_ms,p90_ms,p99_ms,mean_ms\n";

    #[test]
    fn latency_rows_parse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            &dir,
            "latency.csv",
            &format!(
                "{LATENCY_HEADER}on,0.2,query,10,0,0.5,0.9,1.5,0.6\noff, 0 ,order,0,0,0,0,0,0\n"
            ),
        );
        let rows = read_latency(&path).expect("valid file");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].cache, Cache::On);
        assert_eq!(rows[0].kind, Kind::Query);
        assert_eq!(rows[0].p50_ms, 0.5);
        assert_eq!(rows[1].cache, Cache::Off);
        assert_eq!(rows[1].kind, Kind::Order);
        assert_eq!(rows[1].count, 0);
    }

    #[test]
    fn malformed_latency_row_names_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            &dir,
            "latency.csv",
            &format!(
                "{LATENCY_HEADER}on,0,query,10,0,0.5,0.9,1.5,0.6\non,0.2,query,10,0,fast,0.9,1.5,0.6\n"
            ),
        );
        let err = read_latency(&path).expect_err("bad float").to_string();
        assert!(err.contains("latency.csv"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("p50_ms") && err.contains("\"fast\""), "{err}");
    }

    #[test]
    fn short_row_and_unknown_kind_name_their_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            &dir,
            "latency.csv",
            &format!("{LATENCY_HEADER}on,0,query,10,0,0.5\n"),
        );
        let err = read_latency(&path).expect_err("short row").to_string();
        assert!(err.contains("line 2") && err.contains("6 fields"), "{err}");

        let path = write(
            &dir,
            "failover.csv",
            "time_s,kind,latency_ms,status,session,node\n1.0,query,2.0,200,1,\n2.0,explode,,,,\n",
        );
        let err = read_failover(&path).expect_err("unknown kind").to_string();
        assert!(
            err.contains("failover.csv: line 3") && err.contains("explode"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_latency_row_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let row = "on,0.4,order,10,0,5,6,7,5\n";
        let path = write(&dir, "latency.csv", &format!("{LATENCY_HEADER}{row}{row}"));
        let err = read_latency(&path).expect_err("duplicate").to_string();
        assert!(err.contains("line 3") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn missing_column_and_missing_file_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, "latency.csv", "cache,p,kind\non,0,query\n");
        let err = read_latency(&path).expect_err("missing column").to_string();
        assert!(
            err.contains("latency.csv: line 1: missing column `count`"),
            "{err}"
        );

        let missing = dir.path().join("nope.csv");
        let err = read_failover(&missing)
            .expect_err("missing file")
            .to_string();
        assert!(err.contains("nope.csv"), "{err}");
    }

    #[test]
    fn failover_rows_split_into_requests_and_faults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            &dir,
            "failover.csv",
            "time_s,kind,latency_ms,status,session,node\n\
             0.5,query,1.25,200,1,\n\
             1.0,kill,,,,2\n\
             1.1,order,2000,0,3,\n\
             1.2,lookup,3.5,404,2,\n\
             4.0,restart,,,,2\n",
        );
        let failover = read_failover(&path).expect("valid file");
        assert_eq!(failover.requests.len(), 3);
        assert_eq!(
            failover.faults,
            vec![
                Fault {
                    time_s: 1.0,
                    kind: FaultKind::Kill,
                    node: "2".into()
                },
                Fault {
                    time_s: 4.0,
                    kind: FaultKind::Restart,
                    node: "2".into()
                },
            ]
        );
        let failed: Vec<bool> = failover.requests.iter().map(Request::failed).collect();
        assert_eq!(failed, vec![false, true, false]);
        assert_eq!(failover.requests[1].kind, Kind::Order);
        assert_eq!(failover.requests[1].session, 3);
    }

    #[test]
    fn request_without_latency_and_event_without_node_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let header = "time_s,kind,latency_ms,status,session,node\n";
        let path = write(&dir, "a.csv", &format!("{header}1.0,query,,200,1,\n"));
        let err = read_failover(&path).expect_err("no latency").to_string();
        assert!(
            err.contains("line 2") && err.contains("latency_ms"),
            "{err}"
        );

        let path = write(
            &dir,
            "b.csv",
            &format!("{header}1.0,query,1,200,1,\n2,kill,,,,\n"),
        );
        let err = read_failover(&path).expect_err("no node").to_string();
        assert!(err.contains("line 3") && err.contains("node"), "{err}");
    }
}
