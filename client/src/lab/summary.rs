//! What a verification run did, round by round, and the table it ends with: per fault kind,
//! the rounds, their targets, the elections each cost, the slowest recovery and the order
//! reads taken while it was on; then the operations, the violations and how to repeat the run.
//! Pure: built from the rounds the engine recorded and the checker's report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use checker::Report;

/// One round as it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundRecord {
    pub round: usize,
    pub fault: String,
    pub target: String,
    /// Whether the front-end's order cache was on.
    pub order_cache: bool,
    /// The Raft term before the fault, and once the store settled after the heal.
    pub term_before: u64,
    pub term_after: u64,
    /// From the heal to the store settled again.
    pub settle: Duration,
}

impl RoundRecord {
    /// Elections the round cost (terms can only grow; a smaller one would be a bug the
    /// checker reports elsewhere, shown here as 0).
    pub fn elections(&self) -> u64 {
        self.term_after.saturating_sub(self.term_before)
    }

    /// The `terms.txt` line: ROUND FAULT TERM_BEFORE TERM_AFTER.
    pub fn terms_line(&self) -> String {
        format!(
            "{} {} {} {}",
            self.round, self.fault, self.term_before, self.term_after
        )
    }
}

/// The per-fault table.
pub fn fault_table(rounds: &[RoundRecord], report: &Report) -> String {
    let mut by_fault: BTreeMap<&str, Vec<&RoundRecord>> = BTreeMap::new();
    for round in rounds {
        by_fault.entry(&round.fault).or_default().push(round);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<19} {:>6}  {:<24} {:<10} {:>10}  reads during (found/absent/no answer)",
        "fault", "rounds", "targets", "elections", "settled in"
    );
    for (fault, rounds) in by_fault {
        let targets: Vec<&str> = rounds.iter().map(|r| r.target.as_str()).collect();
        let elections: Vec<String> = rounds.iter().map(|r| r.elections().to_string()).collect();
        let slowest = rounds.iter().map(|r| r.settle).max().unwrap_or_default();
        let reads = report
            .reads_during_faults
            .get(fault)
            .map(|r| format!("{}/{}/{}", r.found, r.absent, r.unanswered))
            .unwrap_or_else(|| "-".to_owned());
        let _ = writeln!(
            out,
            "{:<19} {:>6}  {:<24} {:<10} {:>8.1} s  {}",
            fault,
            rounds.len(),
            shorten(&targets.join(" "), 24),
            shorten(&elections.join(","), 10),
            slowest.as_secs_f64(),
            reads
        );
    }
    out
}

fn shorten(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(width - 1).collect();
        short.push('…');
        short
    }
}

/// The lines a verification ends with: the per-fault table, the operations, the violations,
/// whether a store broken on purpose (`expected_failure`) was caught, how to repeat the run
/// (`repeat`, a command line with `seed`), where its files are, and the verdict.
pub fn closing(
    report: &Report,
    rounds: &[RoundRecord],
    expected_failure: Option<&str>,
    seed: u64,
    repeat: &str,
    files: &Path,
    hosts_home: &Path,
) -> String {
    let mut out = String::new();
    out.push('\n');
    out.push_str(&fault_table(rounds, report));
    out.push('\n');
    let _ = writeln!(out, "operations:      {}", operations_line(report));
    let _ = writeln!(out, "violations:      {}", report.violations.len());
    if let Some(expected) = expected_failure {
        let failed = failed_checks(report);
        let verdict = if failed.contains(&expected) {
            "caught"
        } else {
            "NOT caught"
        };
        let failed = if failed.is_empty() {
            "none".to_owned()
        } else {
            failed.join(", ")
        };
        let _ = writeln!(
            out,
            "broken on purpose: {verdict}: expected {expected} to fail; failed: {failed}"
        );
    }
    let _ = writeln!(out, "seed:            {seed} (repeat with: {repeat})");
    let _ = writeln!(
        out,
        "files:           {}/{{history.jsonl,nemesis.jsonl,all.jsonl,state.json,report.json,timeline.html,check.txt,client.log,nemesis.log,terms.txt}}",
        files.display()
    );
    let _ = writeln!(out, "service logs:    {}/logs", hosts_home.display());
    out.push_str(if report.is_ok() {
        "verdict: OK (no violation)\n"
    } else {
        "verdict: VIOLATIONS (see check.txt and timeline.html)\n"
    });
    out
}

/// The operations line: every operation kind with its outcomes.
pub fn operations_line(report: &Report) -> String {
    let total: usize = report.operations.values().flat_map(|o| o.values()).sum();
    let detail: Vec<String> = report
        .operations
        .iter()
        .map(|(op, outcomes)| {
            let parts: Vec<String> = outcomes.iter().map(|(o, n)| format!("{n} {o}")).collect();
            format!("{op} {}", parts.join("/"))
        })
        .collect();
    format!("{total} ({})", detail.join(", "))
}

/// The checks that found violations.
pub fn failed_checks(report: &Report) -> Vec<&str> {
    report
        .checks
        .iter()
        .filter(|c| c.violations > 0)
        .map(|c| c.name.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use checker::report::FaultReads;

    use super::*;

    fn round(
        n: usize,
        fault: &str,
        target: &str,
        terms: (u64, u64),
        settle_ms: u64,
    ) -> RoundRecord {
        RoundRecord {
            round: n,
            fault: fault.to_owned(),
            target: target.to_owned(),
            order_cache: true,
            term_before: terms.0,
            term_after: terms.1,
            settle: Duration::from_millis(settle_ms),
        }
    }

    #[test]
    fn the_table_has_a_row_per_fault_with_its_elections_and_slowest_recovery() {
        let rounds = [
            round(1, "kill-leader", "node2", (3, 4), 900),
            round(2, "partition-follower", "node1", (4, 4), 200),
            round(3, "kill-leader", "node1", (4, 6), 1_400),
        ];
        let mut report = Report::default();
        report.reads_during_faults.insert(
            "kill-leader".to_owned(),
            FaultReads {
                found: 7,
                absent: 1,
                unanswered: 2,
            },
        );
        let table = fault_table(&rounds, &report);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[1].starts_with("kill-leader"), "{table}");
        assert!(lines[1].contains("node2 node1"), "{table}");
        assert!(lines[1].contains("1,2"), "{table}");
        assert!(lines[1].contains("1.4 s"), "{table}");
        assert!(lines[1].ends_with("7/1/2"), "{table}");
        assert!(lines[2].starts_with("partition-follower"), "{table}");
        assert!(lines[2].ends_with('-'), "{table}");
    }

    #[test]
    fn a_term_never_counts_negative_elections() {
        assert_eq!(round(1, "x", "y", (5, 4), 0).elections(), 0);
        assert_eq!(round(1, "x", "y", (5, 7), 0).elections(), 2);
        assert_eq!(
            round(4, "kill-leader", "node2", (5, 7), 0).terms_line(),
            "4 kill-leader 5 7"
        );
    }

    #[test]
    fn a_broken_store_is_caught_only_when_its_check_failed() {
        let mut report = Report::default();
        report.checks.push(checker::report::CheckResult {
            name: "stock-conservation".to_owned(),
            description: String::new(),
            violations: 2,
        });
        let text = |expected| {
            closing(
                &report,
                &[],
                Some(expected),
                7,
                "again",
                Path::new("/r"),
                Path::new("/h"),
            )
        };
        assert!(text("stock-conservation").contains("broken on purpose: caught: expected stock-conservation to fail; failed: stock-conservation"));
        assert!(text("read-your-writes").contains("broken on purpose: NOT caught"));
        assert!(text("read-your-writes").contains("seed:            7 (repeat with: again)"));
    }

    #[test]
    fn the_operations_line_sums_every_outcome() {
        let mut report = Report::default();
        report
            .operations
            .entry("order".to_owned())
            .or_default()
            .extend([("ok".to_owned(), 5), ("fail".to_owned(), 2)]);
        report
            .operations
            .entry("query".to_owned())
            .or_default()
            .insert("ok".to_owned(), 10);
        assert_eq!(
            operations_line(&report),
            "17 (order 2 fail/5 ok, query 10 ok)"
        );
    }
}
