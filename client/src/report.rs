//! The outcome of a run: latency per request type, totals, verification findings, verdict.
//!
//! [`Report`] is what [`crate::run`] returns and what `main` prints (its `Display` is the
//! aligned table, ending with the one-line verdict).

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::config::Config;
use crate::stats::{ByKind, LatencyStats, LatencySummary, RequestKind};
use crate::tally::TimelineEntry;
use crate::verify::{PlacedOrder, VerificationFailure};

/// The parameters a run was made with, as the report and the output files show them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunParams {
    pub frontend: String,
    pub prob: f64,
    pub iterations: u64,
    pub clients: u64,
    pub seed: u64,
    pub max_quantity: u32,
}

impl RunParams {
    pub fn new(config: &Config, seed: u64) -> Self {
        Self {
            frontend: config.frontend_display().to_string(),
            prob: config.prob,
            iterations: config.iterations,
            clients: config.clients,
            seed,
            max_quantity: config.max_quantity,
        }
    }
}

/// The run's totals, as printed and as the JSON file's `totals` object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Totals {
    pub orders_placed: u64,
    pub out_of_stock: u64,
    pub verification_failures: u64,
    pub request_errors: u64,
    /// Queries, orders and lookups, each counted once however many attempts it took.
    pub requests: u64,
    pub wall_time_s: f64,
    /// `requests / wall_time_s`.
    pub throughput_rps: f64,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub params: RunParams,
    /// Toys in the catalog when the run started.
    pub toys: usize,
    /// Latency and error counts per request type.
    pub latency: ByKind<LatencyStats>,
    /// Every order the store acknowledged, in session order.
    pub orders: Vec<PlacedOrder>,
    /// Orders refused because another session had bought the stock (not errors).
    pub out_of_stock: u64,
    /// Answered re-sends of an earlier order's key (`--reuse-sessions`): the same number, a
    /// new one, or a 409 / out-of-stock refusal, all judged by `toystore-check`.
    pub reused: u64,
    /// Lost, changed and duplicated orders found by the final check.
    pub verification_failures: Vec<VerificationFailure>,
    /// A few messages of failed requests per type (counts are in `latency`).
    pub error_samples: ByKind<Vec<String>>,
    /// From before `GET /products` to the end of verification.
    pub wall_time: Duration,
    /// Every request, by start time; empty unless `--timeline` was given.
    pub timeline: Vec<TimelineEntry>,
    /// Unix epoch milliseconds when the run started: the origin of the timeline's `start_ms`.
    pub started_unix_ms: f64,
}

impl Report {
    /// True when no request failed and every acknowledged order verified.
    pub fn succeeded(&self) -> bool {
        self.request_errors() == 0 && self.verification_failures.is_empty()
    }

    pub fn orders_placed(&self) -> u64 {
        self.orders.len() as u64
    }

    pub fn request_errors(&self) -> u64 {
        self.latency.iter().map(|(_, stats)| stats.errors()).sum()
    }

    pub fn summaries(&self) -> ByKind<LatencySummary> {
        ByKind {
            query: self.latency.query.summary(),
            order: self.latency.order.summary(),
            lookup: self.latency.lookup.summary(),
        }
    }

    pub fn totals(&self) -> Totals {
        let requests = self.latency.iter().map(|(_, stats)| stats.count()).sum();
        let secs = self.wall_time.as_secs_f64();
        Totals {
            orders_placed: self.orders_placed(),
            out_of_stock: self.out_of_stock,
            verification_failures: self.verification_failures.len() as u64,
            request_errors: self.request_errors(),
            requests,
            // Milliseconds and tenths of a request per second: what the numbers can resolve.
            wall_time_s: (secs * 1000.0).round() / 1000.0,
            throughput_rps: if secs > 0.0 {
                (requests as f64 / secs * 10.0).round() / 10.0
            } else {
                0.0
            },
        }
    }

    /// The last line of the report: `OK: …` or `FAILED: …` with every reason counted.
    pub fn verdict(&self) -> String {
        if self.succeeded() {
            return format!(
                "OK: {} verified, no request errors",
                plural(
                    self.orders_placed(),
                    "order placed and",
                    "orders placed and"
                )
            );
        }
        let count = |kind: &str| {
            self.verification_failures
                .iter()
                .filter(|f| f.kind() == kind)
                .count() as u64
        };
        let reasons: Vec<String> = [
            (count("lost"), "lost order", "lost orders"),
            (count("mismatch"), "mismatched order", "mismatched orders"),
            (
                count("duplicate"),
                "duplicate order number",
                "duplicate order numbers",
            ),
            (self.request_errors(), "request error", "request errors"),
        ]
        .into_iter()
        .filter(|(n, _, _)| *n > 0)
        .map(|(n, one, many)| plural(n, one, many))
        .collect();
        format!("FAILED: {}", reasons.join(", "))
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.params;
        writeln!(
            f,
            "toy store client: {} sessions x {} iterations, prob {}, max quantity {}, seed {}",
            p.clients, p.iterations, p.prob, p.max_quantity, p.seed
        )?;
        writeln!(f, "front-end {} ({} toys)", p.frontend, self.toys)?;
        writeln!(f)?;

        write!(f, "{:<8}", "kind")?;
        for field in LatencySummary::FIELDS {
            write!(f, "{field:>10}")?;
        }
        writeln!(f)?;
        for (kind, summary) in self.summaries().iter() {
            write!(
                f,
                "{:<8}{:>10}{:>10}",
                kind.as_str(),
                summary.count,
                summary.errors
            )?;
            for ms in summary.latencies_ms() {
                write!(f, "{ms:>10.3}")?;
            }
            writeln!(f)?;
        }
        writeln!(f)?;

        let t = self.totals();
        writeln!(f, "orders placed          {:>10}", t.orders_placed)?;
        writeln!(f, "out-of-stock answers   {:>10}", t.out_of_stock)?;
        if self.reused > 0 {
            writeln!(f, "keys re-sent, answered {:>10}", self.reused)?;
        }
        writeln!(f, "request errors         {:>10}", t.request_errors)?;
        writeln!(f, "verification failures  {:>10}", t.verification_failures)?;
        writeln!(f, "wall time              {:>10.3} s", t.wall_time_s)?;
        writeln!(
            f,
            "throughput             {:>10.1} requests/s",
            t.throughput_rps
        )?;

        if !self.verification_failures.is_empty() {
            writeln!(f, "\nverification failures:")?;
            for failure in &self.verification_failures {
                writeln!(f, "  {failure}")?;
            }
        }
        if t.request_errors > 0 {
            writeln!(f, "\nrequest errors (first few of each kind):")?;
            for kind in RequestKind::ALL {
                for message in self.error_samples.get(kind) {
                    writeln!(f, "  {message}")?;
                }
            }
        }
        writeln!(f)?;
        write!(f, "{}", self.verdict())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use api::order::OrderRecord;

    /// A small report with known numbers, shared with the writers' tests.
    pub(crate) fn sample_report() -> Report {
        let mut latency = ByKind::<LatencyStats>::default();
        for ms in [1, 2, 3, 4] {
            latency.query.record(Duration::from_millis(ms));
        }
        latency.order.record(Duration::from_millis(10));
        latency.lookup.record(Duration::from_millis(2));
        Report {
            params: RunParams {
                frontend: "http://127.0.0.1:8000".into(),
                prob: 0.5,
                iterations: 2,
                clients: 2,
                seed: 42,
                max_quantity: 1,
            },
            toys: 15,
            latency,
            orders: vec![PlacedOrder {
                number: 0,
                name: "Tux".into(),
                quantity: 1,
                session: 1,
            }],
            out_of_stock: 1,
            reused: 0,
            verification_failures: vec![],
            error_samples: ByKind::default(),
            wall_time: Duration::from_secs(2),
            timeline: vec![],
            started_unix_ms: 1_700_000_000_000.0,
        }
    }

    #[test]
    fn a_clean_run_succeeds() {
        let report = sample_report();
        assert!(report.succeeded());
        assert_eq!(
            report.verdict(),
            "OK: 1 order placed and verified, no request errors"
        );
        let totals = report.totals();
        assert_eq!(totals.requests, 6);
        assert_eq!(totals.throughput_rps, 3.0);
        let text = report.to_string();
        assert!(text.contains("seed 42"), "{text}");
        assert!(text.ends_with("OK: 1 order placed and verified, no request errors"));
    }

    #[test]
    fn the_verdict_names_every_reason() {
        let mut report = sample_report();
        let expected = report.orders[0].clone();
        report.verification_failures = vec![
            VerificationFailure::Lost {
                expected: expected.clone(),
            },
            VerificationFailure::Lost {
                expected: expected.clone(),
            },
            VerificationFailure::Mismatch {
                expected,
                got: OrderRecord {
                    number: 0,
                    name: "Lego".into(),
                    quantity: 1,
                },
            },
        ];
        report.latency.order.record_error();
        report
            .error_samples
            .order
            .push("order 1 x \"Tux\": 503: busy".into());
        assert!(!report.succeeded());
        assert_eq!(
            report.verdict(),
            "FAILED: 2 lost orders, 1 mismatched order, 1 request error"
        );
        let text = report.to_string();
        assert!(
            text.contains("order 0: lost: expected 1 x \"Tux\" (session 1)"),
            "{text}"
        );
        assert!(text.contains("503: busy"), "{text}");
    }

    #[test]
    fn a_request_error_alone_fails_the_run() {
        let mut report = sample_report();
        report.latency.query.record_error();
        assert!(!report.succeeded());
        assert_eq!(report.verdict(), "FAILED: 1 request error");
    }
}
