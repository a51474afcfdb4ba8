//! What one worker (a session, or a verification worker) counted while it ran.
//!
//! Each task fills its own [`Tally`] without locks, and the run merges them at the end: the
//! hot path never waits on another session.

use std::time::{Duration, Instant};

use crate::stats::{ByKind, LatencyStats, RequestKind};
use crate::verify::PlacedOrder;

/// Error messages kept per request type: enough to see what went wrong, bounded in size.
const ERROR_SAMPLES_PER_KIND: usize = 5;

/// One HTTP request, as the `--timeline` file shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimelineEntry {
    /// When it was sent, since the run started.
    pub start: Duration,
    pub kind: RequestKind,
    pub latency: Duration,
    /// HTTP status, or 0 when no answer came.
    pub status: u16,
    pub session: u64,
}

#[derive(Debug, Clone)]
pub struct Tally {
    run_start: Instant,
    pub latency: ByKind<LatencyStats>,
    pub placed: Vec<PlacedOrder>,
    pub out_of_stock: u64,
    /// Re-sends of an earlier order's key (key-reuse sessions) that got an answer.
    pub reused: u64,
    pub error_samples: ByKind<Vec<String>>,
    /// `None` when no timeline was asked for: a long run would otherwise hold every request.
    pub timeline: Option<Vec<TimelineEntry>>,
}

impl Tally {
    pub fn new(run_start: Instant, keep_timeline: bool) -> Self {
        Self {
            run_start,
            latency: ByKind::default(),
            placed: Vec::new(),
            out_of_stock: 0,
            reused: 0,
            error_samples: ByKind::default(),
            timeline: keep_timeline.then(Vec::new),
        }
    }

    /// Notes one HTTP request (every attempt, retries included) for the timeline.
    pub fn sent(&mut self, kind: RequestKind, session: u64, started: Instant, status: u16) {
        if let Some(timeline) = &mut self.timeline {
            timeline.push(TimelineEntry {
                start: started.saturating_duration_since(self.run_start),
                kind,
                latency: started.elapsed(),
                status,
                session,
            });
        }
    }

    /// A request that got an answer (including business refusals such as out of stock).
    pub fn answered(&mut self, kind: RequestKind, latency: Duration) {
        self.latency.get_mut(kind).record(latency);
    }

    /// A request that failed for good (after any retries).
    pub fn failed(&mut self, kind: RequestKind, message: String) {
        self.latency.get_mut(kind).record_error();
        let samples = self.error_samples.get_mut(kind);
        if samples.len() < ERROR_SAMPLES_PER_KIND {
            samples.push(message);
        }
    }

    pub fn merge(&mut self, other: Tally) {
        for kind in RequestKind::ALL {
            self.latency.get_mut(kind).merge(other.latency.get(kind));
            let samples = self.error_samples.get_mut(kind);
            let room = ERROR_SAMPLES_PER_KIND.saturating_sub(samples.len());
            samples.extend(other.error_samples.get(kind).iter().take(room).cloned());
        }
        self.placed.extend(other.placed);
        self.out_of_stock += other.out_of_stock;
        self.reused += other.reused;
        if let (Some(mine), Some(theirs)) = (&mut self.timeline, other.timeline) {
            mine.extend(theirs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_keeps_counts_and_bounds_samples() {
        let start = Instant::now();
        let mut a = Tally::new(start, true);
        let mut b = Tally::new(start, true);
        for i in 0..4 {
            a.failed(RequestKind::Order, format!("a{i}"));
            b.failed(RequestKind::Order, format!("b{i}"));
        }
        b.answered(RequestKind::Query, Duration::from_millis(1));
        b.out_of_stock = 2;
        b.sent(RequestKind::Query, 1, start, 200);
        a.merge(b);
        assert_eq!(a.latency.order.errors(), 8);
        assert_eq!(a.latency.query.count(), 1);
        assert_eq!(a.error_samples.order.len(), ERROR_SAMPLES_PER_KIND);
        assert_eq!(a.out_of_stock, 2);
        assert_eq!(a.timeline.map(|t| t.len()), Some(1));
    }
}
