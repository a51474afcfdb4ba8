//! Check 7 (§9.5 "reads never go stale"): `GET /orders/{n}` is linearizable.
//!
//! Each order number is a write-once register, initially absent. Its one write is the order
//! that holds the number (by key, from the final state; or the acknowledged order, if the
//! final state lost it), placed between the first invoke of its key (for a later order of a
//! key re-sent past its dedup window: the first invoke after the key's previous answer) and
//! the first `ok` completion with that number (never, if not acknowledged; any time, if the
//! history never sent its key).
//!
//! Numbers are dense (CONTRACT.md §2): the store hands out #m only after #0..#m-1 exist. So
//! the write of #n also happened before any number above n was acknowledged or found by a
//! read: an order whose own answer never came (or came late) is bounded by its successors,
//! and a 404 for #n after #n+1 was seen is stale.
//!
//! Its reads are the `ok` reads of that number. A read that found another record (another
//! toy or quantity, or an answer naming another number) is reported on its own; the rest go
//! to the Wing–Gong–Lowe search, one number at a time.

use std::collections::BTreeMap;

use super::{Ctx, Violation, ViolationKind};
use crate::history::{Event, OrderRecord, Outcome, Read};
use crate::linearizability::{self, Operation, RegisterModel, RegisterOp, Verdict};

/// The write of one number: what it wrote and when it may have happened.
struct Write {
    value: OrderRecord,
    key: Option<String>,
    invoke: f64,
    complete: f64,
    ops: Vec<usize>,
    /// The operation that showed a higher number existing, when that bounds `complete`.
    successor: Option<(u64, usize)>,
}

/// For each number, when the history first shows it existing: the earliest completion of an
/// `ok` order acknowledged with it or of a read that found it. Sorted by number.
fn first_seen(ctx: &Ctx<'_>) -> Vec<(u64, f64, usize)> {
    let mut seen: BTreeMap<u64, (f64, usize)> = BTreeMap::new();
    for (i, event) in ctx.history.iter().enumerate() {
        let (number, complete) = match event {
            Event::Order(order) if order.outcome == Outcome::Ok => match order.number {
                Some(number) => (number, order.complete),
                None => continue,
            },
            Event::Read(read) if matches!(read.found, Some(Some(_))) => {
                (read.number, read.complete)
            }
            _ => continue,
        };
        let entry = seen.entry(number).or_insert((complete, i));
        if complete < entry.0 {
            *entry = (complete, i);
        }
    }
    seen.into_iter().map(|(n, (t, op))| (n, t, op)).collect()
}

/// The earliest moment some number above `number` was seen existing, by suffix minima over
/// [`first_seen`]: (time, that number, the operation).
struct Successors {
    numbers: Vec<u64>,
    /// `suffix[i]`: the earliest (time, number, op) among entries i.. of `numbers`.
    suffix: Vec<(f64, u64, usize)>,
}

impl Successors {
    fn new(seen: Vec<(u64, f64, usize)>) -> Self {
        let mut suffix = vec![(f64::INFINITY, 0, 0); seen.len()];
        let mut best = (f64::INFINITY, 0, 0);
        for (i, &(number, time, op)) in seen.iter().enumerate().rev() {
            if time <= best.0 {
                best = (time, number, op);
            }
            suffix[i] = best;
        }
        Self {
            numbers: seen.into_iter().map(|(n, _, _)| n).collect(),
            suffix,
        }
    }

    fn above(&self, number: u64) -> Option<(f64, u64, usize)> {
        let first = self.numbers.partition_point(|&n| n <= number);
        self.suffix.get(first).copied()
    }
}

/// Bounds `write` by the numbers above it that were seen existing (dense numbering). The
/// window never ends before it starts: a successor acknowledged before this order was even
/// sent is check 6's (real-time order) to report.
fn bound_by_successors(mut write: Write, number: u64, successors: &Successors) -> Write {
    if let Some((time, above, op)) = successors.above(number)
        && time < write.complete
    {
        write.complete = time.max(write.invoke);
        write.successor = Some((above, op));
        write.ops.push(op);
    }
    write
}

fn write_of(ctx: &Ctx<'_>, number: u64, acked: &BTreeMap<u64, usize>) -> Option<Write> {
    // Per number, not per key: a key re-sent past its dedup window may hold a later order too.
    let interval = |key: Option<&str>| ctx.write_span(key, number);
    if let Some(stored) = ctx.reference().and_then(|r| r.by_number.get(&number)) {
        let key = stored.request_id.as_deref();
        let (invoke, complete) = interval(key);
        return Some(Write {
            value: OrderRecord {
                name: stored.name.clone(),
                quantity: stored.quantity,
                number: Some(number),
            },
            key: key.map(str::to_string),
            invoke,
            complete,
            ops: ctx.key_ops(key),
            successor: None,
        });
    }
    let &op = acked.get(&number)?;
    let Event::Order(order) = &ctx.history[op] else {
        return None;
    };
    let (invoke, complete) = interval(Some(order.key.as_str()));
    Some(Write {
        value: OrderRecord {
            name: order.toy.clone(),
            quantity: order.quantity,
            number: Some(number),
        },
        key: Some(order.key.clone()),
        invoke,
        complete,
        ops: ctx.key_ops(Some(order.key.as_str())),
        successor: None,
    })
}

fn show(record: &Option<OrderRecord>) -> String {
    match record {
        Some(record) => format!("{}×{:?}", record.quantity, record.name),
        None => "404".to_string(),
    }
}

/// Check 7: per order number, the reads and the write admit a linearization.
pub(crate) fn linearizable(ctx: &Ctx<'_>) -> Vec<Violation> {
    let mut reads_by_number: BTreeMap<u64, Vec<(usize, &Read)>> = BTreeMap::new();
    let mut acked: BTreeMap<u64, usize> = BTreeMap::new();
    for (i, event) in ctx.history.iter().enumerate() {
        match event {
            Event::Read(read) if read.outcome == Outcome::Ok && read.found.is_some() => {
                reads_by_number
                    .entry(read.number)
                    .or_default()
                    .push((i, read));
            }
            Event::Order(order) if order.outcome == Outcome::Ok => {
                if let Some(number) = order.number {
                    acked.entry(number).or_insert(i);
                }
            }
            _ => {}
        }
    }

    let successors = Successors::new(first_seen(ctx));
    let mut violations = Vec::new();
    for (number, reads) in reads_by_number {
        let write = write_of(ctx, number, &acked)
            .map(|write| bound_by_successors(write, number, &successors));
        let mut ops: Vec<Operation<RegisterOp<()>>> = Vec::new();
        let mut sources: Vec<usize> = Vec::new();
        for &(i, read) in &reads {
            let found = read.found.clone().flatten();
            if let Some(named) = found.as_ref().and_then(|f| f.number)
                && named != number
            {
                violations.push(Violation::new(
                    ViolationKind::ReadWrongRecord,
                    format!(
                        "read of #{number} at {} was answered with order #{named}",
                        ctx.at(read.invoke)
                    ),
                    vec![i],
                ));
                continue;
            }
            match (&found, &write) {
                (None, _) => {}
                (Some(seen), Some(write)) if seen.same_order(&write.value) => {}
                (Some(seen), write) => {
                    let (expected, mut involved) = match write {
                        Some(w) => (
                            format!("order #{number} is {}", show(&Some(w.value.clone()))),
                            w.ops.clone(),
                        ),
                        None => (format!("no order #{number} exists"), Vec::new()),
                    };
                    involved.push(i);
                    violations.push(Violation::new(
                        ViolationKind::ReadWrongRecord,
                        format!(
                            "read of #{number} at {} found {} but {expected}",
                            ctx.at(read.invoke),
                            show(&Some(seen.clone()))
                        ),
                        involved,
                    ));
                    continue;
                }
            }
            ops.push(Operation {
                call: read.invoke,
                ret: read.complete,
                op: RegisterOp::Read(found.map(|_| ())),
            });
            sources.push(i);
        }
        let Some(write) = write else {
            continue; // every remaining read saw "absent", which is right
        };
        if ops.is_empty() {
            continue;
        }
        let write_op = Operation {
            call: write.invoke,
            ret: write.complete,
            op: RegisterOp::Write(()),
        };
        // Report the read the search is stuck on, drop it and search again, so every stale
        // read of this number is reported (bounded, as a broken store could fail them all).
        for _ in 0..MAX_STALE_PER_NUMBER {
            ops.push(write_op.clone());
            let write_index = ops.len() - 1;
            let verdict = linearizability::check(&RegisterModel::<()>::default(), &ops);
            let Verdict::NotLinearizable { stuck_at } = verdict else {
                break;
            };
            violations.push(stale_read(
                ctx,
                number,
                &write,
                &ops,
                &sources,
                stuck_at,
                write_index,
            ));
            ops.pop();
            if stuck_at == write_index {
                break;
            }
            ops.remove(stuck_at);
            sources.remove(stuck_at);
        }
    }
    violations
}

/// How many stale reads of one order number are reported at most.
const MAX_STALE_PER_NUMBER: usize = 10;

/// Explains why the read the search got stuck on cannot be placed.
fn stale_read(
    ctx: &Ctx<'_>,
    number: u64,
    write: &Write,
    ops: &[Operation<RegisterOp<()>>],
    sources: &[usize],
    stuck_at: usize,
    write_index: usize,
) -> Violation {
    let key = write.key.as_deref().unwrap_or("(none)");
    let placed = match write.successor {
        Some((above, _)) => format!(
            "order #{number} (key {key}, placed at {}; it existed by {}, when #{above} was seen)",
            ctx.at(write.invoke),
            ctx.at(write.complete)
        ),
        None => format!(
            "order #{number} (key {key}, placed at {}, acknowledged at {})",
            ctx.at(write.invoke),
            ctx.at(write.complete)
        ),
    };
    let mut involved = write.ops.clone();
    if stuck_at == write_index {
        return Violation::new(
            ViolationKind::NonLinearizableRead,
            format!("the reads of {placed} admit no linearization"),
            involved,
        );
    }
    let stuck = &ops[stuck_at];
    involved.push(sources[stuck_at]);
    let window = format!("[{}, {}]", ctx.at(stuck.call), ctx.at(stuck.ret));
    let message = match stuck.op {
        RegisterOp::Read(None) => {
            // A read that found the order and returned before this one started, if any.
            let witness = ops
                .iter()
                .enumerate()
                .filter(|(_, op)| op.op == RegisterOp::Read(Some(())) && op.ret < stuck.call)
                .max_by(|a, b| a.1.ret.total_cmp(&b.1.ret));
            if write.complete < stuck.call {
                format!("read at {window} answered 404 for {placed}")
            } else if let Some((j, found)) = witness {
                involved.push(sources[j]);
                format!(
                    "read at {window} answered 404 for {placed} after a read at [{}, {}] found it",
                    ctx.at(found.call),
                    ctx.at(found.ret)
                )
            } else {
                format!("read at {window} answered 404 for {placed}: no linearization allows it")
            }
        }
        _ if stuck.ret < write.invoke => {
            format!("read at {window} found {placed} before it was placed")
        }
        _ => format!("read at {window} found {placed}: no linearization allows it"),
    };
    Violation::new(ViolationKind::NonLinearizableRead, message, involved)
}

#[cfg(test)]
mod tests {
    use crate::check;
    use crate::checks::ViolationKind;
    use crate::checks::testkit::*;
    use crate::history::Outcome;

    #[test]
    fn a_404_after_the_ack_is_a_stale_read() {
        let history = [
            ok_order(1, (0.0, 10.0), "k-0", 0),
            read(2, (11.0, 12.0), 0, None),
        ];
        let report = check(&history, &state(&[stored(0, "k-0", "Tux")]));
        let stale: Vec<_> = report.of_kind(ViolationKind::NonLinearizableRead).collect();
        assert_eq!(stale.len(), 1, "{:?}", report.violations);
        assert_eq!(stale[0].ops, vec![0, 1]);
        assert!(stale[0].message.contains("404"), "{}", stale[0].message);
        assert_eq!(report.violations.len(), 1);
    }

    #[test]
    fn found_then_not_found_is_a_stale_read() {
        // The order never got an answer, but one read saw it and a later one did not.
        let history = [
            order(1, (0.0, 100.0), Outcome::Unknown, "k-0", "Tux", None),
            read(2, (10.0, 12.0), 0, Some("Tux")),
            read(3, (20.0, 22.0), 0, None),
        ];
        let report = check(&history, &state(&[stored(0, "k-0", "Tux")]));
        let stale: Vec<_> = report.of_kind(ViolationKind::NonLinearizableRead).collect();
        assert_eq!(stale.len(), 1, "{:?}", report.violations);
        assert_eq!(stale[0].ops, vec![0, 1, 2]);
        assert!(
            stale[0].message.contains("found it"),
            "{}",
            stale[0].message
        );
    }

    #[test]
    fn every_stale_read_of_one_number_is_reported() {
        let history = [
            ok_order(1, (0.0, 10.0), "k-0", 0),
            read(2, (11.0, 12.0), 0, None),
            read(3, (13.0, 14.0), 0, Some("Tux")),
            read(4, (15.0, 16.0), 0, None),
        ];
        let report = check(&history, &state(&[stored(0, "k-0", "Tux")]));
        let stale: Vec<_> = report.of_kind(ViolationKind::NonLinearizableRead).collect();
        assert_eq!(stale.len(), 2, "{:?}", report.violations);
        assert_eq!(stale[0].ops, vec![0, 1]);
        assert_eq!(stale[1].ops, vec![0, 3]);
    }

    #[test]
    fn found_then_not_found_without_any_history_of_the_order_is_stale() {
        // Nobody in the history placed #0 (another client did): its write may be anywhere,
        // but still only once.
        let history = [
            read(2, (10.0, 12.0), 0, Some("Tux")),
            read(3, (20.0, 22.0), 0, None),
        ];
        let report = check(&history, &state(&[stored(0, "k-x", "Tux")]));
        assert_eq!(
            report.of_kind(ViolationKind::NonLinearizableRead).count(),
            1,
            "{:?}",
            report.violations
        );
    }

    #[test]
    fn a_read_of_a_different_record_is_rejected() {
        let history = [
            ok_order(1, (0.0, 10.0), "k-0", 0),
            read(2, (11.0, 12.0), 0, Some("Lego")),
            read(2, (13.0, 14.0), 5, Some("Tux")),
        ];
        let report = check(&history, &state(&[stored(0, "k-0", "Tux")]));
        let wrong: Vec<_> = report.of_kind(ViolationKind::ReadWrongRecord).collect();
        assert_eq!(wrong.len(), 2, "{:?}", report.violations);
        assert_eq!(wrong[0].ops, vec![0, 1]);
        assert!(
            wrong[1].message.contains("no order #5"),
            "{}",
            wrong[1].message
        );
    }

    #[test]
    fn a_read_before_the_order_was_placed_cannot_find_it() {
        let history = [
            read(2, (0.0, 1.0), 0, Some("Tux")),
            ok_order(1, (5.0, 10.0), "k-0", 0),
        ];
        let report = check(&history, &state(&[stored(0, "k-0", "Tux")]));
        let stale: Vec<_> = report.of_kind(ViolationKind::NonLinearizableRead).collect();
        assert_eq!(stale.len(), 1, "{:?}", report.violations);
        assert!(
            stale[0].message.contains("before it was placed"),
            "{}",
            stale[0].message
        );
    }

    /// Finding 3 of issue 25: #1 acknowledged at t=10 means #0 existed by then, so a 404 for
    /// #0 at t=20 is stale, although #0's own order never got an answer (the old check let
    /// its write happen any time after its invoke).
    #[test]
    fn a_404_below_a_number_already_seen_is_a_stale_read() {
        let history = [
            order(1, (0.0, 100.0), Outcome::Unknown, "k-0", "Tux", None),
            ok_order(2, (5.0, 10.0), "k-1", 1),
            read(3, (20.0, 21.0), 0, None),
            // The same through a read: #3 found at t=31 bounds #2.
            order(1, (0.0, 100.0), Outcome::Unknown, "k-2", "Tux", None),
            unanswered_read(4, (25.0, 26.0), 3),
            read(4, (30.0, 31.0), 3, Some("Tux")),
            read(3, (32.0, 33.0), 2, None),
        ];
        let state = state(&[
            stored(0, "k-0", "Tux"),
            stored(1, "k-1", "Tux"),
            stored(2, "k-2", "Tux"),
            stored(3, "k-x", "Tux"),
        ]);
        let report = check(&history, &state);
        let stale: Vec<_> = report.of_kind(ViolationKind::NonLinearizableRead).collect();
        assert_eq!(stale.len(), 2, "{:#?}", report.violations);
        assert_eq!(stale[0].ops, vec![0, 1, 2]);
        assert!(
            stale[0].message.contains("#1 was seen"),
            "{}",
            stale[0].message
        );
        assert_eq!(stale[1].ops, vec![3, 5, 6]);
        assert_eq!(report.violations.len(), 2, "{:#?}", report.violations);
    }

    /// Finding 5 of issue 25: the client dropped the number of the answer, so an answer for
    /// another order of the same toy and quantity passed.
    #[test]
    fn an_answer_naming_another_number_is_rejected() {
        let mut history = vec![
            ok_order(1, (0.0, 10.0), "k-0", 0),
            ok_order(1, (11.0, 20.0), "k-1", 1),
            read(2, (21.0, 22.0), 0, Some("Tux")),
        ];
        if let crate::history::Event::Read(read) = &mut history[2]
            && let Some(Some(record)) = &mut read.found
        {
            record.number = Some(1);
        }
        let state = state(&[stored(0, "k-0", "Tux"), stored(1, "k-1", "Tux")]);
        let report = check(&history, &state);
        let wrong: Vec<_> = report.of_kind(ViolationKind::ReadWrongRecord).collect();
        assert_eq!(wrong.len(), 1, "{:#?}", report.violations);
        assert_eq!(wrong[0].ops, vec![2]);
        assert_eq!(report.violations.len(), 1, "{:#?}", report.violations);
    }

    #[test]
    fn reads_racing_the_write_are_accepted() {
        let history = [
            ok_order(1, (0.0, 10.0), "k-0", 0),
            read(2, (1.0, 5.0), 0, Some("Tux")),
            read(3, (2.0, 11.0), 0, None), // started before the ack, overlaps the found read
            read(4, (3.0, 4.0), 0, None),
            read(2, (12.0, 13.0), 0, Some("Tux")),
            read(3, (12.0, 13.0), 1, None), // never written: absent is right
        ];
        let report = check(&history, &state(&[stored(0, "k-0", "Tux")]));
        assert!(report.is_ok(), "{:?}", report.violations);
    }
}
