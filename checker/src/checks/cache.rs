//! Check 8 (CONTRACT.md §6.6): read-your-writes through the front-end's cache, for everyone.
//!
//! "Once an order is acknowledged, the front-end never shows that toy's pre-order quantity."
//! Stock versions only grow, so an order that changed a toy's stock bounds every query of the
//! toy invoked after its answer, from any session:
//!
//! - the order's answer names the version its reservation produced (`stock_version`): every
//!   later query shows at least that version;
//! - whether or not it does, its reservation came after its invoke, so it produced a version
//!   above every version a query had shown before that invoke: every later query shows a
//!   version above the highest one shown by a query completed before the order was invoked.
//!
//! Orders that changed no stock set no bound: a deliberate re-send answered from the store's
//! memory of its key. One sort and one sweep per toy.

use std::collections::BTreeMap;

use super::{Ctx, Violation, ViolationKind};
use crate::history::{Event, Outcome};

/// What one order requires of the queries invoked after its answer.
#[derive(Clone, Copy)]
struct Bound {
    /// The order's answer: from then on the bound holds.
    complete: f64,
    /// The lowest version a query may show.
    version: u64,
    order_op: usize,
    /// The query whose version the bound is above, when that is where it comes from.
    baseline_op: Option<usize>,
}

#[derive(Default)]
struct Toy {
    /// (invoke, complete, version, op) of `ok` queries that carry a version.
    queries: Vec<(f64, f64, u64, usize)>,
    /// (invoke, complete, stock version, op) of orders that changed the stock.
    orders: Vec<(f64, f64, Option<u64>, usize)>,
}

/// Check 8: no query invoked after an order's answer shows the toy below the version the
/// order produced.
pub(crate) fn read_your_writes(ctx: &Ctx<'_>) -> Vec<Violation> {
    let mut toys: BTreeMap<&str, Toy> = BTreeMap::new();
    for (i, event) in ctx.history.iter().enumerate() {
        match event {
            Event::Query(query) if query.outcome == Outcome::Ok => {
                if let Some(version) = query.version {
                    toys.entry(query.toy.as_str()).or_default().queries.push((
                        query.invoke,
                        query.complete,
                        version,
                        i,
                    ));
                }
            }
            // A deduplicated re-send changed no stock; a re-send counts only when it placed
            // its new order itself.
            Event::Order(order)
                if order.outcome == Outcome::Ok
                    && (order.reuse.is_none() || ctx.reuse_placed.contains(&i)) =>
            {
                toys.entry(order.toy.as_str()).or_default().orders.push((
                    order.invoke,
                    order.complete,
                    order.stock_version,
                    i,
                ));
            }
            _ => {}
        }
    }

    let mut violations = Vec::new();
    for (toy, mut group) in toys {
        if group.orders.is_empty() || group.queries.is_empty() {
            continue;
        }
        // The highest version shown by a query completed before each order's invoke.
        group
            .queries
            .sort_by(|a, b| a.1.total_cmp(&b.1).then(a.3.cmp(&b.3)));
        let mut highest_by_complete: Vec<(u64, usize)> = Vec::with_capacity(group.queries.len());
        for &(_, _, version, op) in &group.queries {
            let best = match highest_by_complete.last() {
                Some(&(seen, seen_op)) if seen >= version => (seen, seen_op),
                _ => (version, op),
            };
            highest_by_complete.push(best);
        }
        let mut bounds: Vec<Bound> = group
            .orders
            .iter()
            .filter_map(|&(invoke, complete, stock_version, order_op)| {
                let before = group.queries.partition_point(|q| q.1 < invoke);
                let baseline = before.checked_sub(1).map(|last| highest_by_complete[last]);
                let from_baseline = baseline.map(|(version, op)| (version.saturating_add(1), op));
                match (stock_version, from_baseline) {
                    (Some(v), Some((b, op))) if b > v => Some((b, Some(op))),
                    (Some(v), _) => Some((v, None)),
                    (None, Some((b, op))) => Some((b, Some(op))),
                    (None, None) => None,
                }
                .map(|(version, baseline_op)| Bound {
                    complete,
                    version,
                    order_op,
                    baseline_op,
                })
            })
            .collect();
        bounds.sort_by(|a, b| {
            a.complete
                .total_cmp(&b.complete)
                .then(a.order_op.cmp(&b.order_op))
        });

        group
            .queries
            .sort_by(|a, b| a.0.total_cmp(&b.0).then(a.3.cmp(&b.3)));
        let mut next = 0;
        let mut strongest: Option<Bound> = None;
        for &(invoke, _, version, op) in &group.queries {
            while next < bounds.len() && bounds[next].complete < invoke {
                if strongest.is_none_or(|s| bounds[next].version > s.version) {
                    strongest = Some(bounds[next]);
                }
                next += 1;
            }
            let Some(bound) = strongest else { continue };
            if version >= bound.version {
                continue;
            }
            let why = match bound.baseline_op {
                Some(_) => format!(
                    "it had to produce a version above {} (shown before it was placed)",
                    bound.version - 1
                ),
                None => format!("it produced version {}", bound.version),
            };
            let mut ops = vec![bound.order_op, op];
            ops.extend(bound.baseline_op);
            violations.push(Violation::new(
                ViolationKind::ReadYourWrites,
                format!(
                    "a query of {toy:?} invoked at {} shows version {version}, but an order of it was acknowledged at {} and {why}",
                    ctx.at(invoke),
                    ctx.at(bound.complete)
                ),
                ops,
            ));
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use crate::check;
    use crate::checks::ViolationKind;
    use crate::checks::testkit::*;

    #[test]
    fn the_pre_order_stock_after_an_order_is_rejected() {
        let history = [
            query(1, (0.0, 1.0), "Tux", 5),
            ok_order(1, (2.0, 3.0), "k-0", 0),
            query(1, (4.0, 5.0), "Tux", 5), // stale: the cache still serves version 5
            query(1, (6.0, 7.0), "Tux", 6),
        ];
        let report = check(&history, &state(&[stored(0, "k-0", "Tux")]));
        let stale: Vec<_> = report.of_kind(ViolationKind::ReadYourWrites).collect();
        assert_eq!(stale.len(), 1, "{:?}", report.violations);
        assert_eq!(stale[0].ops, vec![0, 1, 2]);
        assert_eq!(report.violations.len(), 1);
    }

    /// Finding 2 of issue 25: the old check held a query only to the version its own session
    /// had seen before its own order. Here session 1's order produced version 7; session 2
    /// then sees version 6 (another session: the old check never looked), and session 1 sees
    /// version 6 too (above the version 5 it saw before ordering, so the old check passed it).
    #[test]
    fn any_session_below_the_version_an_order_produced_is_rejected() {
        let history = [
            query(1, (0.0, 1.0), "Tux", 5),
            versioned_order(1, (2.0, 10.0), "k-0", 0, 7),
            query(2, (11.0, 12.0), "Tux", 6),
            query(1, (13.0, 14.0), "Tux", 6),
            query(2, (15.0, 16.0), "Tux", 7),
        ];
        let report = check(&history, &state(&[stored(0, "k-0", "Tux")]));
        let stale: Vec<_> = report.of_kind(ViolationKind::ReadYourWrites).collect();
        assert_eq!(stale.len(), 2, "{:?}", report.violations);
        assert_eq!(stale[0].ops, vec![1, 2]);
        assert_eq!(stale[1].ops, vec![1, 3]);
        assert!(
            stale[0].message.contains("produced version 7"),
            "{}",
            stale[0].message
        );
        assert_eq!(report.violations.len(), 2, "{:?}", report.violations);
    }

    #[test]
    fn another_sessions_query_seen_before_the_order_bounds_everyone_after_it() {
        // No stock version in the answer (a retry answered from the replicas' memory): the
        // order still produced a version above 5, the one session 2 saw before it was placed.
        let history = [
            query(2, (0.0, 1.0), "Tux", 5),
            ok_order(1, (2.0, 10.0), "k-0", 0),
            query(3, (11.0, 12.0), "Tux", 5),
        ];
        let report = check(&history, &state(&[stored(0, "k-0", "Tux")]));
        let stale: Vec<_> = report.of_kind(ViolationKind::ReadYourWrites).collect();
        assert_eq!(stale.len(), 1, "{:?}", report.violations);
        assert_eq!(stale[0].ops, vec![0, 1, 2]);
    }

    #[test]
    fn other_toys_and_racing_queries_are_not_bound() {
        let history = [
            query(1, (0.0, 1.0), "Tux", 5),
            query(1, (0.0, 1.0), "Lego", 9),
            versioned_order(1, (2.0, 10.0), "k-0", 0, 6),
            query(1, (3.0, 4.0), "Tux", 5), // concurrent with the order
            query(2, (9.0, 12.0), "Tux", 5), // invoked before the answer
            query(1, (11.0, 12.0), "Lego", 9), // another toy
            query(2, (11.0, 12.0), "Tux", 6),
        ];
        let report = check(&history, &state(&[stored(0, "k-0", "Tux")]));
        assert!(report.is_ok(), "{:?}", report.violations);
    }
}
