//! Check 8 (§9.6): read-your-writes through the front-end's cache.
//!
//! For a session and a toy: once the session's `ok` order of the toy completed, every `ok`
//! query of the toy the session invokes later must show a stock version above the one of
//! its last `ok` query that completed before the order was invoked, i.e. never the
//! pre-order stock. One sort and one sweep per (session, toy).

use std::collections::BTreeMap;

use super::{Ctx, Violation, ViolationKind};
use crate::history::{Event, Outcome};

#[derive(Default)]
struct Group {
    /// (invoke, complete, version, op) of `ok` queries.
    queries: Vec<(f64, f64, u64, usize)>,
    /// (invoke, complete, op) of `ok` orders.
    orders: Vec<(f64, f64, usize)>,
}

/// Check 8: a session never sees the pre-order stock of a toy after its order of it.
pub(crate) fn read_your_writes(ctx: &Ctx<'_>) -> Vec<Violation> {
    let mut groups: BTreeMap<(u64, &str), Group> = BTreeMap::new();
    for (i, event) in ctx.history.iter().enumerate() {
        match event {
            Event::Query(query) if query.outcome == Outcome::Ok => {
                if let Some(version) = query.version {
                    groups
                        .entry((query.session, query.toy.as_str()))
                        .or_default()
                        .queries
                        .push((query.invoke, query.complete, version, i));
                }
            }
            // A deduplicated re-send changed no stock, so it sets no new baseline; a re-send
            // counts only when it placed its new order itself.
            Event::Order(order)
                if order.outcome == Outcome::Ok
                    && (order.reuse.is_none() || ctx.reuse_placed.contains(&i)) =>
            {
                groups
                    .entry((order.session, order.toy.as_str()))
                    .or_default()
                    .orders
                    .push((order.invoke, order.complete, i));
            }
            _ => {}
        }
    }

    let mut violations = Vec::new();
    for ((session, toy), mut group) in groups {
        if group.orders.is_empty() || group.queries.is_empty() {
            continue;
        }
        // The baseline of each order: the version of the last query completed before it.
        group
            .queries
            .sort_by(|a, b| a.1.total_cmp(&b.1).then(a.3.cmp(&b.3)));
        // (order complete, baseline version, order op, baseline op)
        let mut bounds: Vec<(f64, u64, usize, usize)> = group
            .orders
            .iter()
            .filter_map(|&(invoke, complete, op)| {
                let before = group.queries.partition_point(|q| q.1 < invoke);
                let &(_, _, version, query_op) = group.queries.get(before.checked_sub(1)?)?;
                Some((complete, version, op, query_op))
            })
            .collect();
        bounds.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.2.cmp(&b.2)));

        group
            .queries
            .sort_by(|a, b| a.0.total_cmp(&b.0).then(a.3.cmp(&b.3)));
        let mut next = 0;
        let mut strongest: Option<(f64, u64, usize, usize)> = None;
        for &(invoke, _, version, op) in &group.queries {
            while next < bounds.len() && bounds[next].0 < invoke {
                if strongest.is_none_or(|s| bounds[next].1 > s.1) {
                    strongest = Some(bounds[next]);
                }
                next += 1;
            }
            if let Some((order_complete, baseline, order_op, baseline_op)) = strongest
                && version <= baseline
            {
                violations.push(Violation::new(
                    ViolationKind::ReadYourWrites,
                    format!(
                        "session {session} ordered {toy:?} (done at {}) but its query at {} shows version {version}, \
                         not above version {baseline} seen before the order",
                        ctx.at(order_complete),
                        ctx.at(invoke)
                    ),
                    vec![order_op, baseline_op, op],
                ));
            }
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

    #[test]
    fn other_sessions_and_toys_and_racing_queries_are_not_bound() {
        let history = [
            query(1, (0.0, 1.0), "Tux", 5),
            query(1, (0.0, 1.0), "Lego", 9),
            ok_order(1, (2.0, 10.0), "k-0", 0),
            query(1, (3.0, 4.0), "Tux", 5), // concurrent with the order
            query(2, (11.0, 12.0), "Tux", 5), // another session
            query(1, (11.0, 12.0), "Lego", 9), // another toy
            query(1, (11.0, 12.0), "Tux", 6),
        ];
        let report = check(&history, &state(&[stored(0, "k-0", "Tux")]));
        assert!(report.is_ok(), "{:?}", report.violations);
    }
}
