//! `OrderStats`: the `POST /orders` answers of the last two minutes, second by second, for the
//! dashboard's chart (orders per second, latency p50/p99).
//!
//! A middleware ([`observe`]) on the order route times every answer as the shopper sees it,
//! retries across failover included. Each second keeps counts and a small latency histogram
//! with logarithmic buckets (20 % wide), so memory stays fixed at any order rate and a
//! percentile costs one pass over 64 numbers. The Prometheus series are for scraping; these
//! are for a page that wants the last minutes without a Prometheus server.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use api::frontend::{DASHBOARD_WINDOW_SECS, OrderSecond};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use parking_lot::Mutex;
use tokio::time::Instant;

/// Latency buckets per second; bucket `i` holds latencies up to `FIRST_BOUND_US * GROWTH^i`.
const BUCKETS: usize = 64;
const FIRST_BOUND_US: f64 = 50.0;
/// 50 µs × 1.2^63 ≈ 4.8 s: the front-end's whole retry budget fits; slower lands in the last.
const GROWTH: f64 = 1.2;

/// One second of answers.
struct Second {
    /// Unix seconds.
    start_s: u64,
    placed: u64,
    refused: u64,
    failed: u64,
    latency: [u32; BUCKETS],
}

impl Second {
    fn new(start_s: u64) -> Self {
        Self {
            start_s,
            placed: 0,
            refused: 0,
            failed: 0,
            latency: [0; BUCKETS],
        }
    }

    fn view(&self) -> OrderSecond {
        OrderSecond {
            start_ms: self.start_s * 1000,
            placed: self.placed,
            refused: self.refused,
            failed: self.failed,
            p50_ms: percentile(&self.latency, 0.50),
            p99_ms: percentile(&self.latency, 0.99),
        }
    }
}

/// The last [`DASHBOARD_WINDOW_SECS`] seconds of order answers.
#[derive(Default)]
pub struct OrderStats {
    /// Seconds with at least one answer, oldest first.
    seconds: Mutex<VecDeque<Second>>,
}

impl OrderStats {
    /// Counts one answer given at `now_ms` (Unix ms) after `elapsed`, by its status.
    pub fn record(&self, now_ms: u64, elapsed: Duration, status: StatusCode) {
        let now_s = now_ms / 1000;
        let mut seconds = self.seconds.lock();
        // A clock that stepped back files the answer under the newest second: the series
        // stays sorted, and the count is not lost.
        if seconds.back().is_none_or(|last| last.start_s < now_s) {
            seconds.push_back(Second::new(now_s));
        }
        while seconds
            .front()
            .is_some_and(|first| first.start_s + DASHBOARD_WINDOW_SECS + 1 < now_s)
        {
            seconds.pop_front();
        }
        let Some(second) = seconds.back_mut() else {
            return;
        };
        if status.is_success() {
            second.placed += 1;
            second.latency[bucket(elapsed)] += 1;
        } else if status.is_server_error() {
            second.failed += 1;
        } else {
            second.refused += 1;
        }
    }

    /// Every completed second of the window ending before `now_ms`, oldest first, zeros for
    /// seconds without answers (so a stall shows as a gap on the chart).
    pub fn window(&self, now_ms: u64) -> Vec<OrderSecond> {
        let now_s = now_ms / 1000;
        let first = now_s.saturating_sub(DASHBOARD_WINDOW_SECS);
        let seconds = self.seconds.lock();
        let mut recorded = seconds.iter().peekable();
        (first..now_s)
            .map(|start_s| {
                while recorded.next_if(|s| s.start_s < start_s).is_some() {}
                match recorded.next_if(|s| s.start_s == start_s) {
                    Some(second) => second.view(),
                    None => Second::new(start_s).view(),
                }
            })
            .collect()
    }
}

/// The bucket a latency falls in.
fn bucket(elapsed: Duration) -> usize {
    let us = elapsed.as_secs_f64() * 1e6;
    if us <= FIRST_BOUND_US {
        return 0;
    }
    let index = ((us / FIRST_BOUND_US).ln() / GROWTH.ln()).ceil();
    // Float to usize saturates; the clamp keeps the last bucket for everything slower.
    (index as usize).min(BUCKETS - 1)
}

/// The upper bound of bucket `index`, in milliseconds.
fn bound_ms(index: usize) -> f64 {
    FIRST_BOUND_US * GROWTH.powi(index as i32) / 1000.0
}

/// The `q` quantile of a histogram (the bound of the bucket it falls in), if it holds any.
fn percentile(histogram: &[u32; BUCKETS], q: f64) -> Option<f64> {
    let total: u64 = histogram.iter().map(|&n| u64::from(n)).sum();
    if total == 0 {
        return None;
    }
    // The rank of the quantile, 1-based: the smallest latency at least `q` of them reach.
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (index, &count) in histogram.iter().enumerate() {
        seen += u64::from(count);
        if seen >= rank {
            return Some(round(bound_ms(index)));
        }
    }
    Some(round(bound_ms(BUCKETS - 1)))
}

/// Microsecond precision is all a chart needs, and it keeps the JSON short.
fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// The front-end's clock, Unix milliseconds (0 before 1970, which no real clock is).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// Middleware for the order route: times the answer and counts it.
pub async fn observe(State(stats): State<Arc<OrderStats>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let response = next.run(req).await;
    stats.record(unix_ms(), started.elapsed(), response.status());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;

    #[test]
    fn seconds_are_counted_by_status_and_gaps_are_zeros() {
        let stats = OrderStats::default();
        let ms = Duration::from_millis;
        stats.record(T0 + 10, ms(2), StatusCode::OK);
        stats.record(T0 + 900, ms(4), StatusCode::OK);
        stats.record(T0 + 950, ms(1), StatusCode::BAD_REQUEST);
        stats.record(T0 + 3_100, ms(5_000), StatusCode::SERVICE_UNAVAILABLE);
        let window = stats.window(T0 + 4_000);
        assert_eq!(window.len() as u64, DASHBOARD_WINDOW_SECS);
        let last: Vec<_> = window.iter().rev().take(4).rev().collect();
        assert_eq!(last[0].start_ms, T0);
        assert_eq!((last[0].placed, last[0].refused, last[0].failed), (2, 1, 0));
        // The refused order's 1 ms does not count: latency is of placed orders.
        let p50 = last[0].p50_ms.expect("placed orders have a median");
        assert!((2.0..=2.4).contains(&p50), "{p50}");
        let p99 = last[0].p99_ms.expect("and a p99");
        assert!((4.0..=4.8).contains(&p99), "{p99}");
        assert_eq!((last[1].placed, last[1].p50_ms), (0, None));
        assert_eq!(last[2].placed + last[2].refused + last[2].failed, 0);
        assert_eq!((last[3].failed, last[3].p99_ms), (1, None));
        // The second in progress is not shown until it is complete.
        assert!(window.iter().all(|s| s.start_ms < T0 + 4_000));
    }

    #[test]
    fn old_seconds_leave_the_window() {
        let stats = OrderStats::default();
        stats.record(T0, Duration::from_millis(1), StatusCode::OK);
        let later = T0 + (DASHBOARD_WINDOW_SECS + 5) * 1000;
        stats.record(later, Duration::from_millis(1), StatusCode::OK);
        let window = stats.window(later + 1000);
        assert_eq!(window.iter().map(|s| s.placed).sum::<u64>(), 1);
        assert_eq!(stats.seconds.lock().len(), 1, "the old second was dropped");
    }

    #[test]
    fn buckets_cover_microseconds_to_the_retry_budget() {
        assert_eq!(bucket(Duration::from_micros(10)), 0);
        assert_eq!(bucket(Duration::from_secs(60)), BUCKETS - 1);
        for us in [60, 900, 3_700, 180_000, 4_000_000] {
            let index = bucket(Duration::from_micros(us));
            let ms = us as f64 / 1000.0;
            assert!(
                bound_ms(index) >= ms && bound_ms(index) < ms * GROWTH + 1e-9,
                "{us} µs"
            );
        }
    }
}
