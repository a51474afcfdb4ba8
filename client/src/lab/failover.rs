//! What a crash experiment (`toystore-lab chaos`) measured, from the client's timeline and
//! the engine's kill and restart events: `failover.csv` (the file `plots` draws), one row per
//! round (the replica killed, the longest request around the kill, failed requests, the gap
//! until the first order sent after the kill was acknowledged), and how many iterations a run
//! needs from a calibration run's pace. Pure: no I/O here.

use std::fmt::Write as _;
use std::time::Duration;

use crate::stats::RequestKind;
use crate::tally::TimelineEntry;

/// A kill or a restart, as the engine did it.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub round: usize,
    pub kind: EventKind,
    pub node: u64,
    /// Kill: whether the replica led. Restart: unused.
    pub was_leader: bool,
    /// Kill: the leader before it. Restart: the leader while the replica was down (if any).
    pub leader: Option<(u64, u64)>,
    /// Unix milliseconds before and after the script ran (a kill is done when the process is
    /// gone, a restart when the replica answers /health).
    pub unix_ms_before: f64,
    pub unix_ms_after: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Kill,
    Restart,
}

impl EventKind {
    fn name(self) -> &'static str {
        match self {
            Self::Kill => "kill",
            Self::Restart => "restart",
        }
    }
}

/// The `failover-events.csv` line of `event`.
pub fn event_line(event: &Event) -> String {
    let (leader, term) = match event.leader {
        Some((id, term)) => (id.to_string(), term.to_string()),
        None => ("none".to_owned(), String::new()),
    };
    let was_leader = match event.kind {
        EventKind::Kill if event.was_leader => "yes",
        EventKind::Kill => "no",
        EventKind::Restart => "",
    };
    format!(
        "{},{},{},{was_leader},{leader},{term},{:.0},{:.0}",
        event.round,
        event.kind.name(),
        event.node,
        event.unix_ms_before,
        event.unix_ms_after
    )
}

pub const EVENTS_HEADER: &str =
    "round,kind,node,was_leader,leader,term,unix_ms_before,unix_ms_after";

/// A request of the timeline in seconds since the client's start.
#[derive(Clone, Copy, Debug)]
struct Request {
    start: f64,
    end: f64,
    kind: RequestKind,
    latency_ms: f64,
    status: u16,
    session: u64,
}

impl Request {
    fn of(entry: &TimelineEntry) -> Self {
        let start = entry.start.as_secs_f64();
        Self {
            start,
            end: start + entry.latency.as_secs_f64(),
            kind: entry.kind,
            latency_ms: entry.latency.as_secs_f64() * 1000.0,
            status: entry.status,
            session: entry.session,
        }
    }

    /// Failed: no answer, or an answer that is not part of the protocol (200, 400 out of
    /// stock, 404).
    fn failed(&self) -> bool {
        !matches!(self.status, 200 | 400 | 404)
    }

    fn is_session_request(&self) -> bool {
        matches!(self.kind, RequestKind::Query | RequestKind::Order)
    }
}

/// The analysis of one run.
pub struct Analysis {
    /// `failover.csv`.
    pub csv: String,
    /// The round table and the overall line.
    pub table: String,
    /// When the sessions' last query or order was answered, and the last restart happened
    /// (seconds since the client's start).
    pub sessions_end: f64,
    pub last_restart: f64,
}

/// Analyses `timeline` (times since the client's start at `origin_unix_ms`) and `events`.
pub fn analyse(timeline: &[TimelineEntry], origin_unix_ms: f64, events: &[Event]) -> Analysis {
    let requests: Vec<Request> = timeline.iter().map(Request::of).collect();
    let at = |event: &Event| ((event.unix_ms_after - origin_unix_ms) / 1000.0).max(0.0);

    let mut rows: Vec<(f64, u8, String)> = requests
        .iter()
        .map(|q| {
            let line = format!(
                "{:.3},{},{:.3},{},{},",
                q.start,
                q.kind.as_str(),
                q.latency_ms,
                q.status,
                q.session
            );
            (q.start, 0, line)
        })
        .collect();
    rows.extend(events.iter().map(|e| {
        let t = at(e);
        (t, 1, format!("{t:.3},{},,,,{}", e.kind.name(), e.node))
    }));
    rows.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut csv = String::from("time_s,kind,latency_ms,status,session,node\n");
    for (_, _, line) in &rows {
        csv.push_str(line);
        csv.push('\n');
    }

    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:>5}  {:>4}  {:>7}  {:>7}  {:>9}  {:>14}  {:>8}  {:>18}  {:>6}  {:>9}",
        "round",
        "node",
        "leader?",
        "kill s",
        "restart s",
        "new leader",
        "requests",
        "max latency",
        "failed",
        "order gap"
    );
    for kill in events.iter().filter(|e| e.kind == EventKind::Kill) {
        let restart = events
            .iter()
            .find(|e| e.kind == EventKind::Restart && e.round == kill.round);
        let t_kill = at(kill);
        let t_end = restart.map_or(t_kill + 3.0, at) + 1.0;
        let window: Vec<&Request> = requests
            .iter()
            .filter(|q| q.start <= t_end && q.end >= t_kill)
            .collect();
        let worst = window
            .iter()
            .max_by(|a, b| a.latency_ms.total_cmp(&b.latency_ms))
            .map_or_else(
                || "-".to_owned(),
                |q| format!("{:.1} ms ({})", q.latency_ms, q.kind.as_str()),
            );
        let first_ack = requests
            .iter()
            .filter(|q| q.kind == RequestKind::Order && q.start >= t_kill && q.status == 200)
            .map(|q| q.end)
            .min_by(f64::total_cmp);
        let gap = first_ack.map_or_else(
            || "-".to_owned(),
            |end| format!("{:.0} ms", (end - t_kill) * 1000.0),
        );
        let new_leader = restart.and_then(|r| r.leader).map_or_else(
            || "-".to_owned(),
            |(id, term)| format!("{id} (term {term})"),
        );
        let t_restart = restart.map_or_else(|| "-".to_owned(), |r| format!("{:.2}", at(r)));
        let _ = writeln!(
            table,
            "{:>5}  {:>4}  {:>7}  {:>7.2}  {:>9}  {:>14}  {:>8}  {:>18}  {:>6}  {:>9}",
            kill.round,
            kill.node,
            if kill.was_leader { "yes" } else { "no" },
            t_kill,
            t_restart,
            new_leader,
            window.len(),
            worst,
            window.iter().filter(|q| q.failed()).count(),
            gap
        );
    }
    let mut latencies: Vec<f64> = requests.iter().map(|q| q.latency_ms).collect();
    latencies.sort_by(f64::total_cmp);
    if let Some(max) = latencies.last() {
        let n = latencies.len();
        let _ = writeln!(
            table,
            "(all {n} requests: p50 {:.1} ms, p99 {:.1} ms, max {max:.1} ms; failed {}. A round's requests: in flight at the kill or sent until 1 s after the restart; order gap: from the kill until the first order sent after it was acknowledged)",
            latencies[n / 2],
            latencies[(n * 99 / 100).min(n - 1)],
            requests.iter().filter(|q| q.failed()).count()
        );
    }
    let sessions_end = requests
        .iter()
        .filter(|q| q.is_session_request())
        .map(|q| q.end)
        .fold(0.0, f64::max);
    let last_restart = events
        .iter()
        .filter(|e| e.kind == EventKind::Restart)
        .map(at)
        .fold(0.0, f64::max);
    Analysis {
        csv,
        table,
        sessions_end,
        last_restart,
    }
}

/// The iterations per session a run needs to last `planned` (plus 25 %), from a calibration
/// run of `iterations` iterations: (iterations per second, iterations), at least 1 000 and a
/// multiple of 100.
pub fn iterations_for(
    calibration: &[TimelineEntry],
    iterations: u64,
    planned: Duration,
) -> (f64, u64) {
    let span = calibration
        .iter()
        .map(Request::of)
        .filter(Request::is_session_request)
        .map(|q| q.end)
        .fold(0.0, f64::max)
        .max(0.001);
    let rate = iterations as f64 / span;
    let needed = (rate * planned.as_secs_f64() * 1.25 / 100.0).ceil() as u64 * 100;
    (rate, needed.max(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(start_ms: u64, kind: RequestKind, latency_ms: u64, status: u16) -> TimelineEntry {
        TimelineEntry {
            start: Duration::from_millis(start_ms),
            kind,
            latency: Duration::from_millis(latency_ms),
            status,
            session: 0,
        }
    }

    fn event(round: usize, kind: EventKind, node: u64, after_ms: f64) -> Event {
        Event {
            round,
            kind,
            node,
            was_leader: kind == EventKind::Kill,
            leader: Some((2, 4)),
            unix_ms_before: after_ms - 5.0,
            unix_ms_after: after_ms,
        }
    }

    const ORIGIN: f64 = 1_000_000.0;

    #[test]
    fn a_round_counts_the_requests_around_its_kill_and_the_first_acknowledged_order() {
        let timeline = [
            request(500, RequestKind::Query, 1, 200),
            // In flight at the kill (2 s): waits 170 ms for the new leader.
            request(1_990, RequestKind::Order, 170, 200),
            request(2_100, RequestKind::Query, 2, 0),
            // The first order sent after the kill, acknowledged at 2.25 s.
            request(2_200, RequestKind::Order, 50, 200),
            // After the restart (4 s) + 1 s: outside the round.
            request(6_000, RequestKind::Order, 900, 200),
        ];
        let events = [
            event(1, EventKind::Kill, 3, ORIGIN + 2_000.0),
            event(1, EventKind::Restart, 3, ORIGIN + 4_000.0),
        ];
        let analysis = analyse(&timeline, ORIGIN, &events);
        let row = analysis.table.lines().nth(1).expect("a round row");
        let fields: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&fields[..5], ["1", "3", "yes", "2.00", "4.00"], "{row}");
        assert!(row.contains("170.0 ms (order)"), "{row}");
        assert!(row.contains(" 3  "), "three requests in the round: {row}");
        assert!(row.ends_with("250 ms"), "{row}");
        assert!(row.contains(" 1  "), "one failed request: {row}");
        assert!((analysis.sessions_end - 6.9).abs() < 1e-9);
        assert!((analysis.last_restart - 4.0).abs() < 1e-9);
    }

    #[test]
    fn the_csv_orders_requests_and_events_by_time() {
        let timeline = [
            request(2_000, RequestKind::Query, 1, 200),
            request(1_000, RequestKind::Order, 3, 200),
        ];
        let events = [event(1, EventKind::Kill, 2, ORIGIN + 2_000.0)];
        let csv = analyse(&timeline, ORIGIN, &events).csv;
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines,
            [
                "time_s,kind,latency_ms,status,session,node",
                "1.000,order,3.000,200,0,",
                "2.000,query,1.000,200,0,",
                "2.000,kill,,,,2",
            ]
        );
    }

    #[test]
    fn the_iterations_last_the_planned_time_with_a_margin() {
        // 100 iterations in 2 s: 50 per second; 40 s planned x 1.25 = 2 500.
        let calibration = [
            request(0, RequestKind::Query, 1, 200),
            request(1_990, RequestKind::Order, 10, 200),
            request(2_500, RequestKind::Lookup, 10, 200),
        ];
        let (rate, iterations) = iterations_for(&calibration, 100, Duration::from_secs(40));
        assert!((rate - 50.0).abs() < 1e-9);
        assert_eq!(iterations, 2_500);
        let (_, short) = iterations_for(&calibration, 100, Duration::from_secs(1));
        assert_eq!(short, 1_000);
    }

    #[test]
    fn an_event_line_says_who_led() {
        let kill = event(2, EventKind::Kill, 3, 1_500.0);
        assert_eq!(event_line(&kill), "2,kill,3,yes,2,4,1495,1500");
        let mut restart = event(2, EventKind::Restart, 3, 1_500.0);
        restart.leader = None;
        assert_eq!(event_line(&restart), "2,restart,3,,none,,1495,1500");
    }
}
