//! `checker`: a Jepsen-style history checker for the toy store.
//!
//! The load client records one JSON line per completed operation while nemeses (kill -9,
//! partitions, pauses) hit the store; afterwards a script dumps the final state of every
//! order replica and of the catalog. [`check`] then proves or refutes the store's promises
//! (CONTRACT.md §6) over the whole history; the `toystore-check` binary wraps it:
//!
//! ```text
//! toystore-check --history FILE.jsonl --state FILE.json [--html FILE.html] [--json FILE]
//! ```
//!
//! Exit status 0: no violation; 1: violations; 2: usage error or unreadable input.
//!
//! # History file (JSON Lines)
//!
//! One object per completed operation ([`history::Event`], written with
//! [`history::write_event`]). `invoke` and `complete` are Unix epoch milliseconds (f64; the
//! client takes one wall-clock reading and adds its monotonic clock, so several processes line
//! up and no operation ends before it began); `session` is the client session (u64);
//! `outcome` is `ok`, `fail` or `unknown`. Unknown fields are ignored; blank lines are
//! skipped; any other line that is not a valid event is an error naming its line number.
//!
//! - query, `GET /products/{name}`:
//!   `{"session":3,"op":"query","invoke":…,"complete":…,"outcome":"ok","toy":"Tux","quantity":97,"version":12}`.
//!   `version` is the catalog's version of the toy's stock (one more per stock change), from
//!   the answer's `ETag`; an `ok` answer without one is recorded without `version` and
//!   reported as a protocol error. `fail` / `unknown` carry `"error":"…"` and no quantity.
//! - order, `POST /orders`:
//!   `{"session":3,"op":"order","invoke":…,"complete":…,"outcome":"ok","key":"<Idempotency-Key>","toy":"Tux","quantity":1,"number":41,"stock_version":13}`.
//!   `stock_version` (optional) is the version of the toy's stock the order's reservation
//!   produced. `fail` is a definite refusal (4xx; its `"status"` and the envelope's
//!   `"reason"`, e.g. `out_of_stock`, `request_id_expired`, recorded): the order must not
//!   exist. `unknown` (503, timeout, connection lost): it may or may not exist;
//!   `"error":"…"`, no number. A deliberate re-send of a key answered before carries
//!   `"reuse":{"number":41,"retention_ms":20000,"placed_ms":…,"answered_ms":…}`
//!   ([`history::Reuse`]): the key's last answer, the store's dedup retention, and how long
//!   before this re-send's answer its order may have been placed (client monotonic clock).
//! - read, `GET /orders/{n}`:
//!   `{"session":3,"op":"read","invoke":…,"complete":…,"outcome":"ok","number":41,"found":{"name":"Tux","quantity":1,"number":41}}`;
//!   `"found":null` means the store answered 404; `found.number` is the number the answer
//!   names. `fail` / `unknown`: no `found`. The client reads while it runs (recent numbers,
//!   numbers past the highest acknowledged, numbers near orders without an answer) and reads
//!   every acknowledged order back at the end.
//! - nemesis (no session):
//!   `{"op":"nemesis","invoke":…,"complete":…,"fault":"kill-leader","target":"node-2","phase":"start"}`,
//!   later a matching `"phase":"heal"` line. The report counts the order reads that overlap
//!   each fault's start..heal window, per fault kind; the timeline draws them.
//!
//! # Final state file (JSON)
//!
//! ```json
//! {"replicas":[{"id":1,"orders":[{"number":0,"request_id":"k-1","name":"Tux","quantity":1,"attempt":0}]}],
//!  "catalog":{"toys":[{"name":"Tux","initial":100,"restocked":200,"quantity":57,"pending":0}],
//!             "reservations":[{"request_id":"k-1","attempt":0,"name":"Tux","quantity":1,"status":"confirmed"}],
//!             "forgotten_through_ms":1795705220272}}
//! ```
//!
//! [`state::FinalState`]: every order each replica holds, in number order (`request_id` is
//! the order's Idempotency-Key, `attempt` its reservation attempt); per toy, the stock it was
//! created with, units added by restocks, the current quantity and the units held by
//! unsettled reservations; every reservation record the catalog holds (`pending`,
//! `confirmed`, `released`, `refused`) and, when it has forgotten finished records, up to
//! which finish time.
//!
//! # Checks
//!
//! Listed in [`checks::CHECKS`]; each violation has a [`ViolationKind`], a one-line message
//! and the history operations involved. The "reference replica" is the one holding the most
//! orders (the first such).
//!
//! 1. replicas identical (`replicas-differ`, `no-replicas`), and agreeing on every number they
//!    hold: request id, attempt, toy, quantity (`replicas-disagree`);
//! 2. numbers dense from 0 (`number-gap`, `duplicate-number`);
//! 3. one order per request id, plus one per re-send past the dedup window that may have
//!    placed one (`duplicate-request-id`);
//! 4. acknowledged orders on every replica, unchanged (`lost-order`, `changed-order`), no
//!    number acknowledged to two keys (`duplicate-number`), no key acknowledged with two
//!    numbers unless re-sent past its dedup window (`duplicate-request-id`);
//! 5. refused orders absent (`failed-order-exists`);
//! 6. real-time order of numbers (`real-time-order`);
//! 7. linearizable order reads, per number a write-once register, Wing–Gong–Lowe search
//!    (`non-linearizable-read`, `read-wrong-record`);
//!    Numbers are dense, so #n existed once any higher number was acknowledged or found;
//!    an answer naming another number is a wrong record;
//! 8. read-your-writes through the front-end cache, for every session: a query invoked
//!    after an order's answer shows at least the version the order produced
//!    (`read-your-writes`);
//! 9. query answers carry their version, and one (toy, version) shows one quantity
//!    (`protocol-error`, `version-conflict`);
//! 10. re-sent keys: within the dedup window answered with their order
//!     (`reuse-not-deduplicated`); after it, that order, a new higher number or a refusal
//!     whose reason is `request_id_expired` or `out_of_stock` (`reuse-wrong-answer`);
//! 11. no refusal as `request_id_reused` of a key sent with one toy and quantity
//!     (`wrong-refusal`);
//! 12. stock conservation (`stock-mismatch`, `negative-stock`, `unsettled-reservations`,
//!     `unknown-toy`);
//! 13. reservations and orders matched one to one by (request id, attempt)
//!     (`reservation-mismatch`).

pub mod checks;
pub mod history;
pub mod linearizability;
pub mod report;
pub mod state;
pub mod timeline;

use std::fs;
use std::path::{Path, PathBuf};

pub use checks::{Violation, ViolationKind};
pub use history::{Event, Outcome, parse_history, read_history, write_event};
pub use report::Report;
pub use state::{FinalState, parse_state, read_state};
pub use timeline::render_html;

/// Everything that can go wrong reading input or writing output (never a check result).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("line {line}: {message}")]
    HistoryLine { line: usize, message: String },
    #[error("malformed final state: {0}")]
    State(String),
    #[error("{}: {source}", path.display())]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<Error>,
    },
}

/// Checks `history` against the final `state`: every check of [`checks::CHECKS`].
pub fn check(history: &[Event], state: &FinalState) -> Report {
    Report::build(history, state, checks::run_all(history, state))
}

/// What the binary does: read both files, check, write the optional HTML and JSON reports.
pub fn run(
    history_path: &Path,
    state_path: &Path,
    html: Option<&Path>,
    json: Option<&Path>,
) -> Result<(Report, String), Error> {
    let history = read_history(history_path)?;
    let state = read_state(state_path)?;
    let report = check(&history, &state);
    let write = |path: &Path, contents: String| {
        fs::write(path, contents).map_err(|source| Error::Write {
            path: path.to_path_buf(),
            source,
        })
    };
    if let Some(path) = html {
        write(path, render_html(&history, &report))?;
    }
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| Error::Write {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        write(path, text + "\n")?;
    }
    let text = report.text(&history);
    Ok((report, text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testkit::*;
    use crate::history::Phase;

    /// A valid history with every kind of operation: unknown orders that committed and that
    /// did not, refusals, concurrent orders, reads racing the write, cached queries.
    #[test]
    fn a_valid_history_with_unknown_outcomes_is_accepted() {
        let history = [
            nemesis((0.0, 1.0), "partition", Phase::Start),
            query(1, (0.0, 2.0), "Tux", 10),
            ok_order(1, (3.0, 20.0), "k-a", 1),
            ok_order(2, (4.0, 8.0), "k-b", 0), // concurrent with k-a, lower number: fine
            order(3, (5.0, 50.0), Outcome::Unknown, "k-c", "Tux", None), // committed as #2
            order(4, (6.0, 50.0), Outcome::Unknown, "k-d", "Lego", None), // never committed
            order(5, (7.0, 9.0), Outcome::Fail, "k-e", "Lego", None),
            read(2, (9.0, 12.0), 1, None), // k-a not yet acknowledged
            read(3, (10.0, 11.0), 0, Some("Tux")),
            read(4, (21.0, 22.0), 1, Some("Tux")),
            read(4, (23.0, 24.0), 2, None), // k-c still in flight
            read(4, (60.0, 61.0), 2, Some("Tux")),
            read(4, (62.0, 63.0), 3, None), // k-d never happened
            query(1, (21.0, 22.0), "Tux", 11),
            nemesis((30.0, 31.0), "partition", Phase::Heal),
        ];
        let state = state(&[
            stored(0, "k-b", "Tux"),
            stored(1, "k-a", "Tux"),
            stored(2, "k-c", "Tux"),
        ]);
        let report = check(&history, &state);
        assert!(report.is_ok(), "{:#?}", report.violations);
        assert_eq!(report.checks.len(), checks::CHECKS.len());
        assert_eq!(report.operations["order"]["unknown"], 2);
        assert_eq!(report.nemesis["partition"].started, 1);
    }

    /// A long, busy, correct history (8 sessions, each op overlapping the next few, every
    /// effect at its op's midpoint), then the same with one stale read.
    fn generated(ops: usize) -> (Vec<Event>, FinalState) {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut history, mut orders, mut version) = (Vec::new(), Vec::new(), 0);
        for i in 0..ops {
            let session = (i % 8) as u64;
            let span = (i as f64, i as f64 + 5.0);
            history.push(match random() % 3 {
                0 => {
                    let number = orders.len() as u64;
                    let key = format!("k-{i}");
                    orders.push(stored(number, &key, "Tux"));
                    version += 1;
                    if random() % 10 == 0 {
                        order(session, span, Outcome::Unknown, &key, "Tux", None)
                    } else {
                        ok_order(session, span, &key, number)
                    }
                }
                1 => query(session, span, "Tux", version),
                _ => {
                    let number = random() % (orders.len() as u64 + 2);
                    let found = (number < orders.len() as u64).then_some("Tux");
                    read(session, span, number, found)
                }
            });
        }
        let mut state = state(&orders);
        state.catalog.toys[0].initial = 1_000_000;
        state.catalog.toys[0].quantity = 1_000_000 - orders.len() as i64;
        (history, state)
    }

    #[test]
    fn a_long_generated_history_is_accepted_and_one_stale_read_is_found() {
        let (mut history, state) = generated(30_000);
        let report = check(&history, &state);
        assert!(
            report.is_ok(),
            "{:#?}",
            &report.violations[..3.min(report.violations.len())]
        );
        assert!(report.operations["read"]["ok"] > 9_000);

        let late_found = (0..history.len())
            .rev()
            .find(|&i| match &history[i] {
                Event::Read(r) => r.number < 100 && matches!(r.found, Some(Some(_))),
                _ => false,
            })
            .unwrap();
        if let Event::Read(read) = &mut history[late_found] {
            read.found = Some(None);
        }
        let report = check(&history, &state);
        assert_eq!(report.violations.len(), 1, "{:#?}", report.violations);
        assert_eq!(
            report.violations[0].kind,
            ViolationKind::NonLinearizableRead
        );
        assert!(report.violations[0].ops.contains(&late_found));
    }

    #[test]
    fn the_json_report_round_trips() {
        let history = [ok_order(1, (0.0, 1.0), "k-0", 3)];
        let report = check(&history, &state(&[]));
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains(r#""kind":"lost-order""#), "{json}");
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
    }
}
