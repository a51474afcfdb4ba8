//! Checks of order operations against the replicas (§9.1, §9.2, §9.5): acknowledged orders
//! durable and unchanged, refused orders absent, numbers respecting real time.

use std::collections::{BTreeMap, BTreeSet};

use super::replicas::list;
use super::{Ctx, Violation, ViolationKind, describe_stored};
use crate::history::{Event, Order, Outcome};

fn orders_with<'a>(
    ctx: &'a Ctx<'_>,
    outcome: Outcome,
) -> impl Iterator<Item = (usize, &'a Order)> + 'a {
    ctx.history
        .iter()
        .enumerate()
        .filter_map(move |(i, event)| match event {
            Event::Order(order) if order.outcome == outcome => Some((i, order)),
            _ => None,
        })
}

/// Check 4: every `ok` order is on every replica at its number with the same key, toy and
/// quantity; no number is acknowledged to two keys, no key with two numbers.
pub(crate) fn acked_durable(ctx: &Ctx<'_>) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut keys_by_number: BTreeMap<u64, BTreeMap<&str, usize>> = BTreeMap::new();
    let mut numbers_by_key: BTreeMap<&str, (BTreeSet<u64>, Vec<usize>)> = BTreeMap::new();
    for (i, order) in orders_with(ctx, Outcome::Ok) {
        let Some(number) = order.number else {
            continue; // parsing guarantees it
        };
        keys_by_number
            .entry(number)
            .or_default()
            .entry(order.key.as_str())
            .or_insert(i);
        let by_key = numbers_by_key.entry(order.key.as_str()).or_default();
        by_key.0.insert(number);
        by_key.1.push(i);

        let mut missing = Vec::new();
        let mut changed = Vec::new();
        let mut changed_ops = vec![i];
        for replica in &ctx.replicas {
            match replica.by_number.get(&number) {
                None => missing.push(replica.id.to_string()),
                Some(stored)
                    if stored.request_id.as_deref() != Some(order.key.as_str())
                        || stored.name != order.toy
                        || stored.quantity != order.quantity =>
                {
                    changed.push(format!(
                        "replica {} holds {}",
                        replica.id,
                        describe_stored(stored)
                    ));
                    changed_ops.extend(ctx.key_ops(stored.request_id.as_deref()));
                }
                Some(_) => {}
            }
        }
        let acked = format!(
            "order key {} {}×{:?} acknowledged as #{number} at {}",
            order.key,
            order.quantity,
            order.toy,
            ctx.at(order.complete)
        );
        if !missing.is_empty() {
            violations.push(Violation::new(
                ViolationKind::LostOrder,
                format!("{acked} is missing on replica(s) {}", missing.join(", ")),
                vec![i],
            ));
        }
        if !changed.is_empty() {
            violations.push(Violation::new(
                ViolationKind::ChangedOrder,
                format!("{acked} but {}", changed.join("; ")),
                changed_ops,
            ));
        }
    }
    for (number, keys) in keys_by_number {
        if keys.len() > 1 {
            violations.push(Violation::new(
                ViolationKind::DuplicateNumber,
                format!(
                    "#{number} was acknowledged to {} different keys: {}",
                    keys.len(),
                    list(keys.keys().map(|k| k.to_string()))
                ),
                keys.values().copied().collect(),
            ));
        }
    }
    for (key, (numbers, ops)) in numbers_by_key {
        // A key re-sent past its dedup window may have been answered with a new order.
        let allowed = ctx.keys.get(key).map_or(1, |info| info.allowed_orders);
        if numbers.len() > allowed {
            violations.push(Violation::new(
                ViolationKind::DuplicateRequestId,
                format!(
                    "key {key} was acknowledged with {} different numbers: {}{}",
                    numbers.len(),
                    list(numbers.iter().map(|n| format!("#{n}"))),
                    if allowed > 1 {
                        format!(" (its re-sends past the dedup window allow {allowed})")
                    } else {
                        String::new()
                    }
                ),
                ops,
            ));
        }
    }
    violations
}

/// Check 5: a refused (`fail`) order's key appears on no replica. A refused deliberate
/// re-send is left out: its key holds the order it was first placed as, and that the refusal
/// placed no other is check 3's part.
pub(crate) fn failed_absent(ctx: &Ctx<'_>) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (_, order) in orders_with(ctx, Outcome::Fail).filter(|(_, order)| order.reuse.is_none()) {
        let holders: Vec<String> = ctx
            .replicas
            .iter()
            .filter_map(|replica| {
                replica.by_key.get(order.key.as_str()).map(|numbers| {
                    let numbers: Vec<String> = numbers.iter().map(|n| format!("#{n}")).collect();
                    format!("replica {} as {}", replica.id, numbers.join(", "))
                })
            })
            .collect();
        if !holders.is_empty() {
            violations.push(Violation::new(
                ViolationKind::FailedOrderExists,
                format!(
                    "order key {} was refused at {} ({}) yet exists: {}",
                    order.key,
                    ctx.at(order.complete),
                    order.error.as_deref().unwrap_or("no error text"),
                    holders.join("; ")
                ),
                ctx.key_ops(Some(order.key.as_str())),
            ));
        }
    }
    violations
}

/// Check 6: if order A was acknowledged before order B was invoked, A's number is below
/// B's. A is an `ok` order; B is any order with a number (acknowledged, or `unknown` but
/// present on the reference replica). One sweep over B by invoke time: O(n log n).
pub(crate) fn real_time(ctx: &Ctx<'_>) -> Vec<Violation> {
    struct Acked<'k> {
        complete: f64,
        number: u64,
        key: &'k str,
        op: usize,
    }
    struct Placed<'k> {
        invoke: f64,
        number: u64,
        key: &'k str,
        op: usize,
    }
    let reference = ctx.reference();
    let mut acked: Vec<Acked<'_>> = Vec::new();
    let mut placed: Vec<Placed<'_>> = Vec::new();
    for (&key, info) in &ctx.keys {
        // Each number acknowledged to the key is an order of its own (more than one when a
        // re-send past the dedup window placed a new one), placed after its own earliest
        // invoke.
        for ack in &info.acks {
            acked.push(Acked {
                complete: ack.complete,
                number: ack.number,
                key,
                op: ack.op,
            });
            placed.push(Placed {
                invoke: ack.invoke,
                number: ack.number,
                key,
                op: if ack.invoke <= info.invoke {
                    info.first_op
                } else {
                    ack.op
                },
            });
        }
        if info.acks.is_empty()
            && let Some(number) = reference
                .and_then(|replica| replica.by_key.get(key))
                .and_then(|numbers| numbers.first().copied())
        {
            placed.push(Placed {
                invoke: info.invoke,
                number,
                key,
                op: info.first_op,
            });
        }
    }
    acked.sort_by(|a, b| a.complete.total_cmp(&b.complete).then(a.op.cmp(&b.op)));
    placed.sort_by(|a, b| a.invoke.total_cmp(&b.invoke).then(a.op.cmp(&b.op)));

    let mut violations = Vec::new();
    let mut next = 0;
    let mut highest: Option<&Acked<'_>> = None;
    for b in &placed {
        while next < acked.len() && acked[next].complete < b.invoke {
            if highest.is_none_or(|h| acked[next].number > h.number) {
                highest = Some(&acked[next]);
            }
            next += 1;
        }
        // The same order seen twice (a retry, a deduplicated re-send) is no inversion; a
        // key's new order below its own earlier one is.
        if let Some(a) = highest
            && a.number >= b.number
            && (a.key != b.key || a.number != b.number)
        {
            violations.push(Violation::new(
                ViolationKind::RealTimeOrder,
                format!(
                    "order key {} got #{} at {}, then order key {} placed at {} got #{}, not above it",
                    a.key,
                    a.number,
                    ctx.at(a.complete),
                    b.key,
                    ctx.at(b.invoke),
                    b.number
                ),
                vec![a.op, b.op],
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
    use crate::history::Outcome;

    #[test]
    fn a_lost_order_is_rejected() {
        let history = [
            ok_order(1, (0.0, 1.0), "k-0", 0),
            ok_order(2, (2.0, 3.0), "k-1", 1),
        ];
        let mut state = state(&[stored(0, "k-0", "Tux"), stored(1, "k-1", "Tux")]);
        for replica in &mut state.replicas {
            replica.orders.pop();
        }
        // The catalog released its stock (else `reservations-match` reports it too).
        state.catalog.toys[0].quantity += 1;
        if let Some(reservations) = &mut state.catalog.reservations {
            reservations.pop();
        }
        let report = check(&history, &state);
        let lost: Vec<_> = report.of_kind(ViolationKind::LostOrder).collect();
        assert_eq!(lost.len(), 1, "{lost:?}");
        assert_eq!(lost[0].ops, vec![1]);
        assert!(lost[0].message.contains("1, 2, 3"), "{}", lost[0].message);
        assert_eq!(report.violations.len(), 1, "{:?}", report.violations);
    }

    #[test]
    fn a_changed_order_is_rejected() {
        let history = [ok_order(1, (0.0, 1.0), "k-0", 0)];
        let state = state(&[stored(0, "k-0", "Lego")]);
        let report = check(&history, &state);
        let changed: Vec<_> = report.of_kind(ViolationKind::ChangedOrder).collect();
        assert_eq!(changed.len(), 1);
        assert!(
            changed[0].message.contains("Lego"),
            "{}",
            changed[0].message
        );
    }

    #[test]
    fn an_order_replaced_by_another_key_is_rejected() {
        let history = [ok_order(1, (0.0, 1.0), "k-0", 0)];
        let state = state(&[stored(0, "k-other", "Tux")]);
        let report = check(&history, &state);
        assert_eq!(report.of_kind(ViolationKind::ChangedOrder).count(), 1);
    }

    #[test]
    fn one_number_acknowledged_twice_is_rejected() {
        let history = [
            ok_order(1, (0.0, 1.0), "k-0", 0),
            ok_order(2, (0.0, 1.0), "k-1", 0),
        ];
        let state = state(&[stored(0, "k-0", "Tux"), stored(1, "k-1", "Tux")]);
        let report = check(&history, &state);
        let duplicates: Vec<_> = report.of_kind(ViolationKind::DuplicateNumber).collect();
        assert_eq!(duplicates.len(), 1, "{duplicates:?}");
        assert_eq!(duplicates[0].ops, vec![0, 1]);
    }

    #[test]
    fn a_failed_order_that_exists_is_rejected() {
        let history = [order(1, (0.0, 1.0), Outcome::Fail, "k-0", "Tux", None)];
        let state = state(&[stored(0, "k-0", "Tux")]);
        let report = check(&history, &state);
        let failed: Vec<_> = report.of_kind(ViolationKind::FailedOrderExists).collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].ops, vec![0]);
        assert_eq!(report.violations.len(), 1, "{:?}", report.violations);
    }

    #[test]
    fn a_real_time_inversion_is_rejected() {
        // k-0 is acknowledged before k-1 is even sent, yet k-1 holds the lower number.
        let history = [
            ok_order(1, (0.0, 1.0), "k-0", 1),
            ok_order(2, (2.0, 3.0), "k-1", 0),
        ];
        let state = state(&[stored(0, "k-1", "Tux"), stored(1, "k-0", "Tux")]);
        let report = check(&history, &state);
        let inverted: Vec<_> = report.of_kind(ViolationKind::RealTimeOrder).collect();
        assert_eq!(inverted.len(), 1);
        assert_eq!(inverted[0].ops, vec![0, 1]);
        assert_eq!(report.violations.len(), 1, "{:?}", report.violations);
    }

    #[test]
    fn a_real_time_inversion_by_an_unknown_order_is_rejected() {
        // k-1 timed out but was committed, with a lower number than an order acknowledged
        // before it was sent.
        let history = [
            ok_order(1, (0.0, 1.0), "k-0", 1),
            order(2, (2.0, 30.0), Outcome::Unknown, "k-1", "Tux", None),
        ];
        let state = state(&[stored(0, "k-1", "Tux"), stored(1, "k-0", "Tux")]);
        let report = check(&history, &state);
        assert_eq!(report.of_kind(ViolationKind::RealTimeOrder).count(), 1);
    }

    #[test]
    fn concurrent_orders_may_be_numbered_either_way() {
        let history = [
            ok_order(1, (0.0, 10.0), "k-0", 1),
            ok_order(2, (5.0, 6.0), "k-1", 0),
            // a retry of k-1 after its ack returns the same number: not an inversion
            ok_order(2, (7.0, 8.0), "k-1", 0),
        ];
        let state = state(&[stored(0, "k-1", "Tux"), stored(1, "k-0", "Tux")]);
        let report = check(&history, &state);
        assert!(report.is_ok(), "{:?}", report.violations);
    }
}
