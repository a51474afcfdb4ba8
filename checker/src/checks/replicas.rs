//! Checks on the replicas alone (§9.2, §9.3): identical, agreeing on every number they hold,
//! numbers dense and unique, one order per request id (more only where the history re-sent
//! the key past the dedup retention).

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

/// How many disagreeing numbers are reported one by one per replica; the rest are counted in
/// one more violation (a replica that lost one order early disagrees on every later number).
const DISAGREEMENTS_SHOWN: usize = 10;

/// Check 1b: for every number two replicas both hold, they hold the same order: request id,
/// attempt, toy and quantity. Unlike check 1 this ignores a replica that merely lags (holds
/// fewer numbers) and names every number the replicas answer differently for, since one
/// number with two request ids means some key was answered differently by two replicas.
pub(crate) fn agree(ctx: &Ctx<'_>) -> Vec<Violation> {
    let Some(reference) = ctx.reference() else {
        return Vec::new(); // check 1 reports it
    };
    let mut violations = Vec::new();
    for replica in &ctx.replicas {
        if std::ptr::eq(replica, reference) {
            continue;
        }
        let mut disagreeing = 0usize;
        let mut numbers: Vec<u64> = replica.by_number.keys().copied().collect();
        numbers.sort_unstable();
        for number in numbers {
            let (Some(theirs), Some(ours)) = (
                replica.by_number.get(&number),
                reference.by_number.get(&number),
            ) else {
                continue;
            };
            if theirs == ours {
                continue;
            }
            disagreeing += 1;
            if disagreeing > DISAGREEMENTS_SHOWN {
                continue;
            }
            let mut ops = ctx.key_ops(ours.request_id.as_deref());
            ops.extend(ctx.key_ops(theirs.request_id.as_deref()));
            violations.push(Violation::new(
                ViolationKind::ReplicasDisagree,
                format!(
                    "replicas disagree on #{number}: replica {} holds {}, replica {} holds {}",
                    reference.id,
                    describe_stored(ours),
                    replica.id,
                    describe_stored(theirs)
                ),
                ops,
            ));
        }
        if disagreeing > DISAGREEMENTS_SHOWN {
            violations.push(Violation::new(
                ViolationKind::ReplicasDisagree,
                format!(
                    "replica {} disagrees with replica {} on {} more order number(s)",
                    replica.id,
                    reference.id,
                    disagreeing - DISAGREEMENTS_SHOWN
                ),
                Vec::new(),
            ));
        }
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

/// Check 3: one order per request id on each replica. A key the history re-sent after its
/// dedup window may hold one more order per such re-send that was answered with a new number
/// or not answered; a re-send inside the window, a refusal, or an answer with the old number
/// says the store deduplicated it, so it must not have placed a second order.
pub(crate) fn unique_request_ids(ctx: &Ctx<'_>) -> Vec<Violation> {
    let mut violations = Vec::new();
    for replica in &ctx.replicas {
        let repeated: BTreeMap<&str, (&Vec<u64>, usize)> = replica
            .by_key
            .iter()
            .map(|(key, numbers)| {
                let allowed = ctx.keys.get(key).map_or(1, |info| info.allowed_orders);
                (*key, (numbers, allowed))
            })
            .filter(|(_, (numbers, allowed))| numbers.len() > *allowed)
            .collect();
        for (key, (numbers, allowed)) in repeated {
            let why = if allowed > 1 {
                format!(
                    " but the history allows {allowed} (one, plus its re-sends past the dedup window that may have placed an order)"
                )
            } else if ctx.keys.get(key).is_some_and(|info| info.ops.len() > 1) {
                " though every re-send of it was deduplicated, refused or within the dedup window"
                    .to_string()
            } else {
                String::new()
            };
            violations.push(Violation::new(
                ViolationKind::DuplicateRequestId,
                format!(
                    "replica {} holds request id {key} {} times: {}{why}",
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
    fn replicas_holding_different_orders_under_one_number_are_rejected_per_number() {
        let mut state = state(&[
            stored(0, "k-0", "Tux"),
            stored(1, "k-1", "Tux"),
            stored(2, "k-2", "Tux"),
        ]);
        for replica in &mut state.replicas {
            for order in &mut replica.orders {
                order.attempt = Some(0);
            }
        }
        // Replica 2 placed #1 under another attempt of the same key (a dedup that depended on
        // how the log was applied), replica 3 gave #2 to another key, and lags by nothing.
        state.replicas[1].orders[1].attempt = Some(1);
        state.replicas[2].orders[2].request_id = Some("k-9".into());
        let report = check(&[], &state);
        let disagree: Vec<_> = report.of_kind(ViolationKind::ReplicasDisagree).collect();
        assert_eq!(disagree.len(), 2, "{disagree:?}");
        assert!(
            disagree[0].message.contains("#1")
                && disagree[0].message.contains("attempt 0")
                && disagree[0].message.contains("attempt 1"),
            "{}",
            disagree[0].message
        );
        assert!(
            disagree[1].message.contains("#2") && disagree[1].message.contains("k-9"),
            "{}",
            disagree[1].message
        );
    }

    #[test]
    fn a_lagging_replica_agrees_on_what_it_holds() {
        let mut state = state(&[stored(0, "k-0", "Tux"), stored(1, "k-1", "Tux")]);
        state.replicas[2].orders.pop();
        let report = check(&[], &state);
        assert_eq!(report.of_kind(ViolationKind::ReplicasDisagree).count(), 0);
        assert_eq!(report.of_kind(ViolationKind::ReplicasDiffer).count(), 1);
    }

    #[test]
    fn many_disagreements_are_shown_ten_then_counted() {
        let orders: Vec<_> = (0..15)
            .map(|n| stored(n, &format!("k-{n}"), "Tux"))
            .collect();
        let mut state = state(&orders);
        for order in &mut state.replicas[1].orders {
            order.quantity = 2;
        }
        let report = check(&[], &state);
        let disagree: Vec<_> = report.of_kind(ViolationKind::ReplicasDisagree).collect();
        assert_eq!(disagree.len(), 11);
        assert!(
            disagree[10].message.contains("on 5 more order number(s)"),
            "{}",
            disagree[10].message
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
