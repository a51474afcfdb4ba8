//! The report: counts, the checks run, the violations, as text and as JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::checks::{CHECKS, Violation, ViolationKind};
use crate::history::{Event, Outcome, Phase};
use crate::state::FinalState;

/// How many examples of each violation kind the text report shows.
pub const EXAMPLES_PER_KIND: usize = 5;

/// Start and heal events of one fault.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NemesisCount {
    pub started: usize,
    pub healed: usize,
}

/// Order reads (`GET /orders/{n}`) taken while one kind of fault was active: their interval
/// overlaps one of its start..heal windows. Shows whether the linearizable-reads check had
/// reads to judge under that fault at all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultReads {
    /// Answered with the order.
    pub found: usize,
    /// Answered 404.
    pub absent: usize,
    /// No usable answer.
    pub unanswered: usize,
}

/// Every fault's active windows, by fault kind: from each start's invoke to the completion of
/// the next heal of the same fault and target (to the end of time if none came).
fn fault_windows(history: &[Event]) -> BTreeMap<&str, Vec<(f64, f64)>> {
    let mut nemeses: Vec<&crate::history::Nemesis> = history
        .iter()
        .filter_map(|event| match event {
            Event::Nemesis(n) => Some(n),
            _ => None,
        })
        .collect();
    nemeses.sort_by(|a, b| a.invoke.total_cmp(&b.invoke));
    let mut windows: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for (i, start) in nemeses.iter().enumerate() {
        if start.phase != Phase::Start {
            continue;
        }
        let heal = nemeses[i + 1..]
            .iter()
            .find(|n| n.phase == Phase::Heal && n.fault == start.fault && n.target == start.target);
        windows
            .entry(start.fault.as_str())
            .or_default()
            .push((start.invoke, heal.map_or(f64::INFINITY, |h| h.complete)));
    }
    windows
}

/// Counts the order reads that overlap each kind of fault (a read counts once per kind).
fn reads_during_faults(history: &[Event]) -> BTreeMap<String, FaultReads> {
    let windows = fault_windows(history);
    let mut counts: BTreeMap<String, FaultReads> = BTreeMap::new();
    for event in history {
        let Event::Read(read) = event else { continue };
        for (fault, spans) in &windows {
            if !spans
                .iter()
                .any(|&(start, end)| read.invoke <= end && read.complete >= start)
            {
                continue;
            }
            let count = counts.entry((*fault).to_string()).or_default();
            match (&read.outcome, &read.found) {
                (Outcome::Ok, Some(Some(_))) => count.found += 1,
                (Outcome::Ok, Some(None)) => count.absent += 1,
                _ => count.unanswered += 1,
            }
        }
    }
    // Every fault is listed, also one that met no read: that is the point of the count.
    for fault in windows.keys() {
        counts.entry((*fault).to_string()).or_default();
    }
    counts
}

/// One check and how many violations it found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub name: String,
    pub description: String,
    pub violations: usize,
}

/// Everything the checker found; serialized as is by `--json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// op (`query`, `order`, `read`) → outcome (`ok`, `fail`, `unknown`) → count.
    pub operations: BTreeMap<String, BTreeMap<String, usize>>,
    /// fault → start / heal events.
    pub nemesis: BTreeMap<String, NemesisCount>,
    /// Deliberate key re-sends: window (`within`, `between`, `after`) → answer (`same`
    /// number, `new` number, `refused`, `unknown`) → count. Shows which corners a run reached.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reuses: BTreeMap<String, BTreeMap<String, usize>>,
    /// fault → the order reads taken while it was active.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reads_during_faults: BTreeMap<String, FaultReads>,
    pub sessions: usize,
    /// From the first invoke to the last completion.
    pub span_seconds: f64,
    pub replicas: usize,
    /// Orders on the reference replica (the one holding the most).
    pub orders: usize,
    pub checks: Vec<CheckResult>,
    /// Grouped by kind, in the order the checks found them.
    pub violations: Vec<Violation>,
    /// The last line of the text report: `OK: …` or `VIOLATIONS: N …`.
    pub summary: String,
}

impl Report {
    pub(crate) fn build(
        history: &[Event],
        state: &FinalState,
        found: BTreeMap<usize, Vec<Violation>>,
    ) -> Report {
        let mut operations: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        let mut nemesis: BTreeMap<String, NemesisCount> = BTreeMap::new();
        let mut reuses: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        let mut sessions = BTreeSet::new();
        let (mut first, mut last) = (f64::INFINITY, f64::NEG_INFINITY);
        for event in history {
            first = first.min(event.invoke());
            last = last.max(event.complete());
            match event {
                Event::Nemesis(n) => {
                    let count = nemesis.entry(n.fault.clone()).or_default();
                    match n.phase {
                        Phase::Start => count.started += 1,
                        Phase::Heal => count.healed += 1,
                    }
                }
                _ => {
                    if let Event::Order(order) = event
                        && let Some(reuse) = &order.reuse
                    {
                        let answer = match (order.outcome, order.number) {
                            (Outcome::Ok, Some(n)) if n == reuse.number => "same",
                            (Outcome::Ok, _) => "new",
                            (Outcome::Fail, _) => "refused",
                            (Outcome::Unknown, _) => "unknown",
                        };
                        *reuses
                            .entry(reuse.window().to_string())
                            .or_default()
                            .entry(answer.to_string())
                            .or_default() += 1;
                    }
                    if let (Some(session), Some(outcome)) = (event.session(), event.outcome()) {
                        sessions.insert(session);
                        *operations
                            .entry(event.op_name().to_string())
                            .or_default()
                            .entry(outcome.as_str().to_string())
                            .or_default() += 1;
                    }
                }
            }
        }
        let span_seconds = if last >= first {
            (last - first) / 1000.0
        } else {
            0.0
        };
        let checks = CHECKS
            .iter()
            .enumerate()
            .map(|(i, check)| CheckResult {
                name: check.name.to_string(),
                description: check.description.to_string(),
                violations: found.get(&i).map_or(0, Vec::len),
            })
            .collect();
        let mut violations: Vec<Violation> = found.into_values().flatten().collect();
        violations.sort_by_key(|v| v.kind); // stable: keeps each check's order within a kind
        let operation_count: usize = operations.values().flat_map(|o| o.values()).sum();
        let summary = if violations.is_empty() {
            format!(
                "OK: {operation_count} operations, {} checks, no violation",
                CHECKS.len()
            )
        } else {
            let mut by_kind: BTreeMap<ViolationKind, usize> = BTreeMap::new();
            for violation in &violations {
                *by_kind.entry(violation.kind).or_default() += 1;
            }
            let kinds: Vec<String> = by_kind
                .iter()
                .map(|(kind, n)| format!("{kind} {n}"))
                .collect();
            format!(
                "VIOLATIONS: {} ({}) in {operation_count} operations",
                violations.len(),
                kinds.join(", ")
            )
        };
        Report {
            operations,
            nemesis,
            reuses,
            reads_during_faults: reads_during_faults(history),
            sessions: sessions.len(),
            span_seconds,
            replicas: state.replicas.len(),
            orders: state
                .replicas
                .iter()
                .map(|r| r.orders.len())
                .max()
                .unwrap_or(0),
            checks,
            violations,
            summary,
        }
    }

    /// True when no violation was found.
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// The violations of one kind.
    pub fn of_kind(&self, kind: ViolationKind) -> impl Iterator<Item = &Violation> {
        self.violations.iter().filter(move |v| v.kind == kind)
    }

    /// Every operation involved in some violation.
    pub fn involved_ops(&self) -> BTreeSet<usize> {
        self.violations
            .iter()
            .flat_map(|v| v.ops.iter().copied())
            .collect()
    }

    /// The text summary; `history` is the one checked (to describe the operations involved).
    pub fn text(&self, history: &[Event]) -> String {
        let t0 = history
            .iter()
            .map(Event::invoke)
            .fold(f64::INFINITY, f64::min);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "toystore-check: {} sessions over {:.1} s; {} replicas, {} orders",
            self.sessions, self.span_seconds, self.replicas, self.orders
        );
        out.push_str("operations:\n");
        if self.operations.is_empty() {
            out.push_str("  none\n");
        }
        for (op, outcomes) in &self.operations {
            let counts: Vec<String> = outcomes
                .iter()
                .map(|(outcome, n)| format!("{outcome} {n}"))
                .collect();
            let _ = writeln!(out, "  {op:<8} {}", counts.join("  "));
        }
        out.push_str("nemesis:\n");
        if self.nemesis.is_empty() {
            out.push_str("  none\n");
        }
        for (fault, count) in &self.nemesis {
            let _ = writeln!(
                out,
                "  {fault:<20} {} started, {} healed",
                count.started, count.healed
            );
        }
        if !self.reads_during_faults.is_empty() {
            out.push_str("order reads during faults (found / 404 / no answer):\n");
            for (fault, reads) in &self.reads_during_faults {
                let _ = writeln!(
                    out,
                    "  {fault:<20} {} found, {} not found, {} unanswered",
                    reads.found, reads.absent, reads.unanswered
                );
            }
        }
        if !self.reuses.is_empty() {
            out.push_str("key re-sends (by dedup window: answer):\n");
            for (window, answers) in &self.reuses {
                let counts: Vec<String> = answers
                    .iter()
                    .map(|(answer, n)| format!("{answer} {n}"))
                    .collect();
                let _ = writeln!(out, "  {window:<8} {}", counts.join("  "));
            }
        }
        out.push_str("checks:\n");
        for check in &self.checks {
            let status = if check.violations == 0 {
                "ok  ".to_string()
            } else {
                format!("FAIL ({})", check.violations)
            };
            let _ = writeln!(
                out,
                "  {status:<10} {:<22} {}",
                check.name, check.description
            );
        }
        if !self.violations.is_empty() {
            out.push_str("violations:\n");
            let mut start = 0;
            while start < self.violations.len() {
                let kind = self.violations[start].kind;
                let end = self.violations[start..]
                    .iter()
                    .position(|v| v.kind != kind)
                    .map_or(self.violations.len(), |n| start + n);
                let _ = writeln!(out, "  {kind} ({}):", end - start);
                for violation in &self.violations[start..end.min(start + EXAMPLES_PER_KIND)] {
                    let _ = writeln!(out, "    - {}", violation.message);
                    for &op in &violation.ops {
                        if let Some(event) = history.get(op) {
                            let _ = writeln!(
                                out,
                                "        op #{op} [{:.3}s, {:.3}s] {}",
                                (event.invoke() - t0) / 1000.0,
                                (event.complete() - t0) / 1000.0,
                                event.describe()
                            );
                        }
                    }
                }
                if end - start > EXAMPLES_PER_KIND {
                    let _ = writeln!(out, "    ... and {} more", end - start - EXAMPLES_PER_KIND);
                }
                start = end;
            }
        }
        out.push_str(&self.summary);
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::check;
    use crate::checks::testkit::*;
    use crate::history::{Outcome, Phase};

    /// Finding 1 of issue 25: the report shows how many order reads each kind of fault met,
    /// so a run whose reads all came after the faults is visible as such.
    #[test]
    fn reads_are_counted_per_fault_they_overlap() {
        let history = [
            nemesis((10.0, 11.0), "kill-leader", Phase::Start),
            nemesis((20.0, 21.0), "kill-leader", Phase::Heal),
            nemesis((30.0, 31.0), "pause-leader", Phase::Start),
            ok_order(1, (0.0, 1.0), "k-0", 0),
            read(2, (5.0, 10.0), 0, Some("Tux")), // touches the kill's start
            read(2, (12.0, 13.0), 1, None),
            unanswered_read(3, (14.0, 25.0), 0),
            read(2, (22.0, 23.0), 0, Some("Tux")), // between the faults
            read(2, (40.0, 41.0), 0, Some("Tux")), // the pause never healed
        ];
        let report = check(&history, &state(&[stored(0, "k-0", "Tux")]));
        let kill = &report.reads_during_faults["kill-leader"];
        assert_eq!((kill.found, kill.absent, kill.unanswered), (1, 1, 1));
        let pause = &report.reads_during_faults["pause-leader"];
        assert_eq!((pause.found, pause.absent, pause.unanswered), (1, 0, 0));
        let text = report.text(&history);
        assert!(
            text.contains("kill-leader          1 found, 1 not found, 1 unanswered"),
            "{text}"
        );
    }

    #[test]
    fn text_counts_operations_and_ends_with_the_verdict() {
        let history = [
            nemesis((0.0, 1.0), "partition", Phase::Start),
            ok_order(1, (0.0, 1.0), "k-0", 0),
            order(2, (0.0, 1.0), Outcome::Fail, "k-1", "Tux", None),
            query(3, (0.0, 1.0), "Tux", 1),
            nemesis((5.0, 6.0), "partition", Phase::Heal),
        ];
        let report = check(&history, &state(&[stored(0, "k-0", "Tux")]));
        let text = report.text(&history);
        assert!(text.contains("order    fail 1  ok 1"), "{text}");
        assert!(text.contains("partition"), "{text}");
        assert!(text.contains("1 started, 1 healed"), "{text}");
        assert_eq!(report.sessions, 3);
        assert!(
            text.trim_end()
                .ends_with("OK: 3 operations, 14 checks, no violation"),
            "{text}"
        );
    }

    #[test]
    fn text_shows_at_most_five_examples_per_kind() {
        let history: Vec<_> = (0..7u64)
            .map(|i| ok_order(1, (0.0, 1.0), &format!("k-{i}"), i))
            .collect();
        let mut state = state(&[]);
        state.replicas.truncate(1);
        let report = check(&history, &state);
        let text = report.text(&history);
        assert_eq!(text.matches("    - order key").count(), 5, "{text}");
        assert!(text.contains("... and 2 more"), "{text}");
        assert!(
            text.trim_end()
                .ends_with("VIOLATIONS: 7 (lost-order 7) in 7 operations"),
            "{text}"
        );
    }
}
