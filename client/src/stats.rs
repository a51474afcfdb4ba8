//! Latency statistics per request type, kept in HDR histograms.
//!
//! [`LatencyStats`] records durations in microseconds and sums them up as a
//! [`LatencySummary`] in milliseconds, the unit of the printed table and of the CSV/JSON files.
//! It knows nothing about the store, so the benchmark tool reuses it as is.

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Significant decimal digits the histograms keep: 0.1% relative error on every percentile.
const SIGNIFICANT_DIGITS: u8 = 3;

/// The three kinds of request the client makes, in the order reports list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// `GET /products/{name}`
    Query,
    /// `POST /orders`
    Order,
    /// `GET /orders/{number}`, during verification
    Lookup,
}

impl RequestKind {
    pub const ALL: [RequestKind; 3] = [Self::Query, Self::Order, Self::Lookup];

    /// The name used in tables, files and timelines.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Order => "order",
            Self::Lookup => "lookup",
        }
    }
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One value per [`RequestKind`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ByKind<T> {
    pub query: T,
    pub order: T,
    pub lookup: T,
}

impl<T> ByKind<T> {
    pub fn get(&self, kind: RequestKind) -> &T {
        match kind {
            RequestKind::Query => &self.query,
            RequestKind::Order => &self.order,
            RequestKind::Lookup => &self.lookup,
        }
    }

    pub fn get_mut(&mut self, kind: RequestKind) -> &mut T {
        match kind {
            RequestKind::Query => &mut self.query,
            RequestKind::Order => &mut self.order,
            RequestKind::Lookup => &mut self.lookup,
        }
    }

    /// `(kind, value)` pairs in report order.
    pub fn iter(&self) -> impl Iterator<Item = (RequestKind, &T)> {
        RequestKind::ALL
            .into_iter()
            .map(move |kind| (kind, self.get(kind)))
    }
}

/// Latencies of one kind of request, plus how many of them failed.
///
/// Failed requests are counted but their latency is not recorded: a request that timed out
/// after ten seconds says nothing about how fast the store answers.
#[derive(Debug, Clone)]
pub struct LatencyStats {
    /// Microseconds; auto-resizing, so no value is ever out of range.
    histogram: Histogram<u64>,
    errors: u64,
}

impl Default for LatencyStats {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyStats {
    pub fn new() -> Self {
        let histogram = Histogram::new(SIGNIFICANT_DIGITS)
            .expect("3 significant digits is within hdrhistogram's supported 0..=5");
        Self {
            histogram,
            errors: 0,
        }
    }

    /// Records one answered request.
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        // `record` grows the auto-resizing histogram to fit (`saturating_record` would clamp
        // to its current, tiny range instead); it can only fail if growing fails.
        if self.histogram.record(micros).is_err() {
            self.histogram.saturating_record(micros);
        }
    }

    /// Counts one failed request.
    pub fn record_error(&mut self) {
        self.errors += 1;
    }

    /// Adds another set of samples (e.g. another session's) to this one.
    pub fn merge(&mut self, other: &LatencyStats) {
        self.histogram
            .add(&other.histogram)
            .expect("an auto-resizing histogram accepts every value of another");
        self.errors += other.errors;
    }

    /// Requests answered (those with a recorded latency).
    pub fn answered(&self) -> u64 {
        self.histogram.len()
    }

    /// Requests that failed.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// All requests: answered plus failed.
    pub fn count(&self) -> u64 {
        self.answered() + self.errors
    }

    /// The latency at quantile `q` (0..=1) of the answered requests; zero when there are none.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.histogram.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_micros(self.histogram.value_at_quantile(q))
    }

    pub fn summary(&self) -> LatencySummary {
        let empty = self.histogram.is_empty();
        let ms = |micros: u64| if empty { 0.0 } else { micros as f64 / 1000.0 };
        LatencySummary {
            count: self.count(),
            errors: self.errors,
            p50_ms: ms(self.histogram.value_at_quantile(0.50)),
            p90_ms: ms(self.histogram.value_at_quantile(0.90)),
            p99_ms: ms(self.histogram.value_at_quantile(0.99)),
            max_ms: ms(self.histogram.max()),
            // Whole microseconds, like the other columns: finer digits would be noise.
            mean_ms: if empty {
                0.0
            } else {
                self.histogram.mean().round() / 1000.0
            },
        }
    }
}

/// What the report prints and the CSV/JSON files hold for one kind of request.
///
/// `count` includes the failed requests; the percentiles, max and mean are over the answered
/// ones only (`count - errors`), and are 0 when none was answered.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl LatencySummary {
    /// Column names, in the order of [`LatencySummary::values`]: the CSV header after `kind`.
    pub const FIELDS: [&'static str; 7] = [
        "count", "errors", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms",
    ];

    /// The latency columns, in milliseconds.
    pub fn latencies_ms(&self) -> [f64; 5] {
        [
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.max_ms,
            self.mean_ms,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Within hdrhistogram's 0.1% precision (plus rounding to whole microseconds).
    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= expected * 0.001 + 0.001
    }

    #[test]
    fn percentiles_of_1_to_100_ms() {
        let mut stats = LatencyStats::new();
        for ms in 1..=100 {
            stats.record(Duration::from_millis(ms));
        }
        stats.record_error();
        let s = stats.summary();
        assert_eq!(s.count, 101);
        assert_eq!(s.errors, 1);
        assert_eq!(stats.answered(), 100);
        assert!(close(s.p50_ms, 50.0), "p50 {}", s.p50_ms);
        assert!(close(s.p90_ms, 90.0), "p90 {}", s.p90_ms);
        assert!(close(s.p99_ms, 99.0), "p99 {}", s.p99_ms);
        assert!(close(s.max_ms, 100.0), "max {}", s.max_ms);
        assert!(close(s.mean_ms, 50.5), "mean {}", s.mean_ms);
    }

    #[test]
    fn a_few_slow_requests_show_in_p99_not_p50() {
        let mut stats = LatencyStats::new();
        for _ in 0..98 {
            stats.record(Duration::from_micros(500));
        }
        stats.record(Duration::from_secs(2));
        stats.record(Duration::from_secs(2));
        let s = stats.summary();
        assert!(close(s.p50_ms, 0.5), "p50 {}", s.p50_ms);
        assert!(close(s.p90_ms, 0.5), "p90 {}", s.p90_ms);
        assert!(close(s.p99_ms, 2000.0), "p99 {}", s.p99_ms);
        assert!(close(s.max_ms, 2000.0), "max {}", s.max_ms);
        assert_eq!(stats.quantile(0.5), Duration::from_micros(500));
    }

    #[test]
    fn empty_stats_are_all_zero() {
        let mut stats = LatencyStats::new();
        stats.record_error();
        let s = stats.summary();
        assert_eq!((s.count, s.errors), (1, 1));
        assert_eq!(s.latencies_ms(), [0.0; 5]);
        assert_eq!(stats.quantile(0.99), Duration::ZERO);
    }

    #[test]
    fn merging_adds_samples_and_errors() {
        let mut a = LatencyStats::new();
        let mut b = LatencyStats::new();
        a.record(Duration::from_millis(1));
        b.record(Duration::from_millis(3));
        b.record_error();
        a.merge(&b);
        let s = a.summary();
        assert_eq!((s.count, s.errors), (3, 1));
        assert!(close(s.max_ms, 3.0));
        assert!(close(s.mean_ms, 2.0));
    }

    #[test]
    fn kinds_have_stable_names() {
        let names: Vec<_> = RequestKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names, ["query", "order", "lookup"]);
        assert_eq!(
            serde_json::to_value(RequestKind::Lookup).ok(),
            Some(serde_json::json!("lookup"))
        );
    }
}
