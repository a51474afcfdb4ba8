//! The files a run leaves for `plots/`: the latency table (CSV or JSON) and the timeline (CSV).
//!
//! Column and field names here are a contract with the plot tool: change them only together.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde_json::{Map, Value, json};

use crate::config::{OutputFile, OutputFormat};
use crate::error::ClientError;
use crate::report::Report;
use crate::stats::LatencySummary;
use crate::tally::TimelineEntry;

/// Header of the `--out` CSV file.
pub const SUMMARY_CSV_HEADER: &str = "kind,count,errors,p50_ms,p90_ms,p99_ms,max_ms,mean_ms";

/// Header of the `--timeline` CSV file.
pub const TIMELINE_CSV_HEADER: &str = "start_ms,kind,latency_ms,status,session";

/// Creates (empties) `path` now, so an unwritable path fails the run before any load is sent
/// rather than after.
pub fn check_writable(path: &Path) -> Result<(), ClientError> {
    File::create(path)
        .map(drop)
        .map_err(|err| ClientError::write(path, err))
}

/// Writes the `--out` file in the format its extension chose.
pub fn write_summary(out: &OutputFile, report: &Report) -> Result<(), ClientError> {
    let io_error = |err| ClientError::write(&out.path, err);
    let mut file = BufWriter::new(File::create(&out.path).map_err(io_error)?);
    match out.format {
        OutputFormat::Csv => write_summary_csv(&mut file, report).map_err(io_error)?,
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut file, &summary_json(report))?;
            file.write_all(b"\n").map_err(io_error)?;
        }
    }
    file.flush().map_err(io_error)
}

/// Writes the `--timeline` file.
pub fn write_timeline(path: &Path, entries: &[TimelineEntry]) -> Result<(), ClientError> {
    let io_error = |err| ClientError::write(path, err);
    let mut file = BufWriter::new(File::create(path).map_err(io_error)?);
    write_timeline_csv(&mut file, entries).map_err(io_error)?;
    file.flush().map_err(io_error)
}

/// One row per request type, latencies in milliseconds with microsecond precision.
pub fn write_summary_csv(out: &mut impl Write, report: &Report) -> io::Result<()> {
    writeln!(out, "{SUMMARY_CSV_HEADER}")?;
    for (kind, s) in report.summaries().iter() {
        writeln!(
            out,
            "{kind},{},{},{:.3},{:.3},{:.3},{:.3},{:.3}",
            s.count, s.errors, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms, s.mean_ms
        )?;
    }
    Ok(())
}

/// `{"started_unix_ms": …, "params": {…}, "stats": {"query": {…}, "order": {…},
/// "lookup": {…}}, "totals": {…}, "failures": [..], "error_samples": [..]}`.
pub fn summary_json(report: &Report) -> Value {
    let stats: Map<String, Value> = report
        .summaries()
        .iter()
        .map(|(kind, summary)| (kind.as_str().to_string(), summary_value(summary)))
        .collect();
    let failures: Vec<String> = report
        .verification_failures
        .iter()
        .map(ToString::to_string)
        .collect();
    let error_samples: Vec<&String> = report
        .error_samples
        .iter()
        .flat_map(|(_, samples)| samples)
        .collect();
    json!({
        "started_unix_ms": report.started_unix_ms,
        "params": report.params,
        "stats": stats,
        "totals": report.totals(),
        "failures": failures,
        "error_samples": error_samples,
    })
}

fn summary_value(summary: &LatencySummary) -> Value {
    json!({
        "count": summary.count,
        "errors": summary.errors,
        "p50_ms": summary.p50_ms,
        "p90_ms": summary.p90_ms,
        "p99_ms": summary.p99_ms,
        "max_ms": summary.max_ms,
        "mean_ms": summary.mean_ms,
    })
}

/// One row per HTTP request (retries included), in the order given.
pub fn write_timeline_csv(out: &mut impl Write, entries: &[TimelineEntry]) -> io::Result<()> {
    writeln!(out, "{TIMELINE_CSV_HEADER}")?;
    for e in entries {
        writeln!(
            out,
            "{:.3},{},{:.3},{},{}",
            e.start.as_secs_f64() * 1000.0,
            e.kind,
            e.latency.as_secs_f64() * 1000.0,
            e.status,
            e.session
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::report::tests::sample_report;
    use crate::stats::RequestKind;

    #[test]
    fn summary_csv_has_the_exact_header_and_one_row_per_kind() {
        let mut buf = Vec::new();
        write_summary_csv(&mut buf, &sample_report()).expect("writes to memory");
        let text = String::from_utf8(buf).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "kind,count,errors,p50_ms,p90_ms,p99_ms,max_ms,mean_ms"
        );
        assert_eq!(lines.len(), 4);
        assert!(lines[1].starts_with("query,4,0,2.00"), "{}", lines[1]);
        assert!(lines[2].starts_with("order,1,0,10.00"), "{}", lines[2]);
        assert!(lines[3].starts_with("lookup,1,0,2.00"), "{}", lines[3]);
        for line in &lines[1..] {
            assert_eq!(line.split(',').count(), 8, "{line}");
        }
    }

    #[test]
    fn summary_json_has_the_exact_fields() {
        let value = summary_json(&sample_report());
        let keys = |v: &Value| -> Vec<String> {
            let mut keys: Vec<String> = v
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            keys.sort();
            keys
        };
        assert_eq!(
            keys(&value),
            [
                "error_samples",
                "failures",
                "params",
                "started_unix_ms",
                "stats",
                "totals"
            ]
        );
        assert_eq!(
            keys(&value["params"]),
            [
                "clients",
                "frontend",
                "iterations",
                "max_quantity",
                "prob",
                "seed"
            ]
        );
        assert_eq!(value["params"]["seed"], 42);
        assert_eq!(value["params"]["frontend"], "http://127.0.0.1:8000");
        assert_eq!(keys(&value["stats"]), ["lookup", "order", "query"]);
        let mut fields: Vec<&str> = LatencySummary::FIELDS.to_vec();
        fields.sort_unstable();
        assert_eq!(keys(&value["stats"]["query"]), fields);
        assert_eq!(value["stats"]["query"]["count"], 4);
        assert_eq!(
            keys(&value["totals"]),
            [
                "orders_placed",
                "out_of_stock",
                "request_errors",
                "requests",
                "throughput_rps",
                "verification_failures",
                "wall_time_s"
            ]
        );
        assert_eq!(value["totals"]["orders_placed"], 1);
        assert_eq!(value["totals"]["out_of_stock"], 1);
    }

    #[test]
    fn timeline_csv_has_one_row_per_request() {
        let entries = [
            TimelineEntry {
                start: Duration::from_micros(1500),
                kind: RequestKind::Query,
                latency: Duration::from_micros(250),
                status: 200,
                session: 0,
            },
            TimelineEntry {
                start: Duration::from_millis(20),
                kind: RequestKind::Order,
                latency: Duration::from_secs(1),
                status: 0,
                session: 3,
            },
        ];
        let mut buf = Vec::new();
        write_timeline_csv(&mut buf, &entries).expect("writes to memory");
        let text = String::from_utf8(buf).expect("utf-8");
        assert_eq!(
            text,
            "start_ms,kind,latency_ms,status,session\n\
             1.500,query,0.250,200,0\n\
             20.000,order,1000.000,0,3\n"
        );
    }
}
