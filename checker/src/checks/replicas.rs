//! Checks on the replicas alone (§9.2, §9.3): identical, numbers dense and unique, one order
//! per request id.

use std::collections::BTreeMap;

use super::{Ctx, Violation, ViolationKind, describe_stored};

/// Check 1: every replica holds the same list of orders as the reference replica; reports
/// the first difference of each replica that differs.
pub(crate) fn identical(ctx: &Ctx<'_>) -> Vec<Violation> {
    let Some(reference) = ctx.reference() else {
        return vec![Violation::new(
            ViolationKind::NoReplicas,
            "the final state lists no replica".into(),
            Vec::new(),
        )];
    };
    let mut violations = Vec::new();
    for replica in &ctx.replicas {
        if std::ptr::eq(replica, reference) {
            continue;
        }
        let (ours, theirs) = (&reference.orders, &replica.orders);
        let first_difference =
            (0..ours.len().max(theirs.len())).find(|&i| ours.get(i) != theirs.get(i));
        let Some(i) = first_difference else {
            continue;
        };
        let describe = |order: Option<&&crate::state::StoredOrder>| {
            order.map_or_else(|| "nothing".to_string(), |o| describe_stored(o))
        };
        let (a, b) = (ours.get(i), theirs.get(i));
        let mut ops = ctx.key_ops(a.and_then(|o| o.request_id.as_deref()));
        ops.extend(ctx.key_ops(b.and_then(|o| o.request_id.as_deref())));
        violations.push(Violation::new(
            ViolationKind::ReplicasDiffer,
            format!(
                "replica {} ({} orders) differs from replica {} ({} orders) at position {i}: {} vs {}",
                replica.id,
                theirs.len(),
                reference.id,
                ours.len(),
                describe(b),
                describe(a),
            ),
            ops,
        ));
    }
    violations
}

/// Check 2: each replica's numbers are exactly 0..n-1 (no gap, no duplicate).
pub(crate) fn dense(ctx: &Ctx<'_>) -> Vec<Violation> {
    let mut violations = Vec::new();
    for replica in &ctx.replicas {
        let mut duplicates: Vec<u64> = Vec::new();
        let mut duplicate_ops = Vec::new();
        let mut gaps: Vec<(u64, u64)> = Vec::new(); // inclusive ranges
        let mut expected = 0u64;
        let mut previous: Option<u64> = None;
        for order in &replica.orders {
            if previous == Some(order.number) {
                if duplicates.last() != Some(&order.number) {
                    duplicates.push(order.number);
                    if let Some(first) = replica.by_number.get(&order.number) {
                        duplicate_ops.extend(ctx.key_ops(first.request_id.as_deref()));
                    }
                }
                duplicate_ops.extend(ctx.key_ops(order.request_id.as_deref()));
                continue;
            }
            if order.number > expected {
                gaps.push((expected, order.number - 1));
            }
            expected = order.number.saturating_add(1);
            previous = Some(order.number);
        }
        if !duplicates.is_empty() {
            violations.push(Violation::new(
                ViolationKind::DuplicateNumber,
                format!(
                    "replica {} holds {} number(s) more than once: {}",
                    replica.id,
                    duplicates.len(),
                    list(duplicates.iter().map(|n| format!("#{n}")))
                ),
                duplicate_ops,
            ));
        }
        if !gaps.is_empty() {
            let missing: u128 = gaps
                .iter()
                .map(|&(from, to)| u128::from(to - from) + 1)
                .sum();
            violations.push(Violation::new(
                ViolationKind::NumberGap,
                format!(
                    "replica {} misses {missing} number(s) below #{}: {}",
                    replica.id,
                    expected.saturating_sub(1),
                    list(gaps.iter().map(|&(from, to)| if from == to {
                        format!("#{from}")
                    } else {
                        format!("#{from}..#{to}")
                    }))
                ),
                Vec::new(),
            ));
        }
    }
    violations
}

/// Check 3: at most one order per request id on each replica.
pub(crate) fn unique_request_ids(ctx: &Ctx<'_>) -> Vec<Violation> {
    let mut violations = Vec::new();
    for replica in &ctx.replicas {
        let repeated: BTreeMap<&str, &Vec<u64>> = replica
            .by_key
            .iter()
            .filter(|(_, numbers)| numbers.len() > 1)
            .map(|(key, numbers)| (*key, numbers))
            .collect();
        for (key, numbers) in repeated {
            violations.push(Violation::new(
                ViolationKind::DuplicateRequestId,
                format!(
                    "replica {} holds request id {key} {} times: {}",
                    replica.id,
                    numbers.len(),
                    list(numbers.iter().map(|n| format!("#{n}")))
                ),
                ctx.key_ops(Some(key)),
            ));
        }
    }
    violations
}

/// Joins up to 5 items, then says how many more.
pub(crate) fn list(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    let shown = items.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > 5 {
        format!("{shown} and {} more", items.len() - 5)
    } else {
        shown
    }
}

#[cfg(test)]
mod tests {
    use crate::check;
    use crate::checks::ViolationKind;
    use crate::checks::testkit::*;

    #[test]
    fn replicas_that_differ_are_reported_once_each() {
        let mut state = state(&[stored(0, "k-0", "Tux"), stored(1, "k-1", "Tux")]);
        state.replicas[1].orders[1].quantity = 2; // changed on replica 2
        state.replicas[2].orders.pop(); // replica 3 lags
        let report = check(&[], &state);
        let differ: Vec<_> = report.of_kind(ViolationKind::ReplicasDiffer).collect();
        assert_eq!(differ.len(), 2, "{differ:?}");
        assert!(
            differ[0].message.contains("replica 2"),
            "{}",
            differ[0].message
        );
        assert!(
            differ[1].message.contains("replica 3"),
            "{}",
            differ[1].message
        );
        assert!(
            differ[1].message.contains("nothing"),
            "{}",
            differ[1].message
        );
    }

    #[test]
    fn a_gap_in_numbers_is_rejected() {
        let state = state(&[stored(0, "k-0", "Tux"), stored(2, "k-2", "Tux")]);
        let report = check(&[], &state);
        let gaps: Vec<_> = report.of_kind(ViolationKind::NumberGap).collect();
        assert_eq!(gaps.len(), 3, "one per replica");
        assert!(gaps[0].message.contains("#1"), "{}", gaps[0].message);
    }

    #[test]
    fn numbers_not_starting_at_zero_are_a_gap() {
        let state = state(&[stored(1, "k-1", "Tux")]);
        assert_eq!(
            check(&[], &state).of_kind(ViolationKind::NumberGap).count(),
            3
        );
    }

    #[test]
    fn a_duplicate_number_on_a_replica_is_rejected() {
        let history = [ok_order(1, (0.0, 1.0), "k-a", 0)];
        let state = state(&[stored(0, "k-a", "Tux"), stored(0, "k-b", "Tux")]);
        let report = check(&history, &state);
        let duplicates: Vec<_> = report.of_kind(ViolationKind::DuplicateNumber).collect();
        assert_eq!(duplicates.len(), 3);
        assert_eq!(duplicates[0].ops, vec![0]);
    }

    #[test]
    fn a_request_id_used_twice_is_rejected() {
        let history = [ok_order(1, (0.0, 1.0), "k-a", 0)];
        let state = state(&[stored(0, "k-a", "Tux"), stored(1, "k-a", "Tux")]);
        let report = check(&history, &state);
        let twice: Vec<_> = report.of_kind(ViolationKind::DuplicateRequestId).collect();
        assert_eq!(twice.len(), 3);
        assert!(twice[0].message.contains("#0, #1"), "{}", twice[0].message);
        assert_eq!(twice[0].ops, vec![0]);
    }

    #[test]
    fn no_replica_at_all_is_a_violation() {
        let mut state = state(&[]);
        state.replicas.clear();
        assert_eq!(
            check(&[], &state)
                .of_kind(ViolationKind::NoReplicas)
                .count(),
            1
        );
    }
}
