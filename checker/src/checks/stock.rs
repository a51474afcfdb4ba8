//! Check 9 (§9.4): stock conservation between the catalog and the orders that exist.
//!
//! Per toy: initial + restocked − (units of the toy's orders on the reference replica) −
//! pending == quantity; quantity ≥ 0; pending == 0 once the store settled. Orders of toys
//! the catalog does not know are violations too.

use std::collections::BTreeMap;

use super::{Ctx, Violation, ViolationKind};

/// Check 9: every toy's stock adds up with the orders that exist.
pub(crate) fn conservation(ctx: &Ctx<'_>) -> Vec<Violation> {
    let mut sold: BTreeMap<&str, (i128, Vec<usize>)> = BTreeMap::new();
    if let Some(reference) = ctx.reference() {
        for order in &reference.orders {
            let entry = sold.entry(order.name.as_str()).or_default();
            entry.0 += i128::from(order.quantity);
            if entry.1.len() < 20 {
                entry.1.extend(ctx.key_ops(order.request_id.as_deref()));
            }
        }
    }
    let mut violations = Vec::new();
    for toy in &ctx.state.catalog.toys {
        let units_sold = sold.remove(toy.name.as_str()).map_or(0, |s| s.0);
        let expected = i128::from(toy.initial) + i128::from(toy.restocked)
            - units_sold
            - i128::from(toy.pending);
        if expected != i128::from(toy.quantity) {
            violations.push(Violation::new(
                ViolationKind::StockMismatch,
                format!(
                    "{:?}: initial {} + restocked {} - sold {units_sold} - pending {} = {expected}, \
                     but the catalog holds {}",
                    toy.name, toy.initial, toy.restocked, toy.pending, toy.quantity
                ),
                Vec::new(),
            ));
        }
        if toy.quantity < 0 {
            violations.push(Violation::new(
                ViolationKind::NegativeStock,
                format!("{:?}: the catalog holds {} units", toy.name, toy.quantity),
                Vec::new(),
            ));
        }
        if toy.pending != 0 {
            violations.push(Violation::new(
                ViolationKind::UnsettledReservations,
                format!(
                    "{:?}: {} units still held by reservations after the store settled",
                    toy.name, toy.pending
                ),
                Vec::new(),
            ));
        }
    }
    for (name, (units, ops)) in sold {
        violations.push(Violation::new(
            ViolationKind::UnknownToy,
            format!("orders of {units} units of {name:?}, a toy the catalog does not know"),
            ops,
        ));
    }
    violations
}

#[cfg(test)]
mod tests {
    use crate::check;
    use crate::checks::ViolationKind;
    use crate::checks::testkit::*;

    #[test]
    fn stock_that_does_not_add_up_is_rejected() {
        let mut state = state(&[stored(0, "k-0", "Tux"), stored(1, "k-1", "Lego")]);
        state.catalog.toys[0].quantity = 98; // two Tux gone, one sold
        state.catalog.toys[1].restocked = 10; // restock not reflected in Lego's quantity
        let report = check(&[], &state);
        let mismatches: Vec<_> = report.of_kind(ViolationKind::StockMismatch).collect();
        assert_eq!(mismatches.len(), 2, "{:?}", report.violations);
        assert!(
            mismatches[0].message.contains("= 99"),
            "{}",
            mismatches[0].message
        );
    }

    #[test]
    fn negative_stock_is_rejected() {
        let mut state = state(&[]);
        state.catalog.toys[0].initial = 0;
        state.catalog.toys[0].pending = 1;
        state.catalog.toys[0].quantity = -1;
        let report = check(&[], &state);
        assert_eq!(report.of_kind(ViolationKind::NegativeStock).count(), 1);
        assert_eq!(report.of_kind(ViolationKind::StockMismatch).count(), 0);
    }

    #[test]
    fn unsettled_reservations_are_rejected_even_when_the_sum_holds() {
        let mut state = state(&[stored(0, "k-0", "Tux")]);
        state.catalog.toys[0].pending = 3;
        state.catalog.toys[0].quantity -= 3;
        let report = check(&[], &state);
        assert_eq!(
            report.of_kind(ViolationKind::UnsettledReservations).count(),
            1
        );
        assert_eq!(report.violations.len(), 1, "{:?}", report.violations);
    }

    #[test]
    fn orders_of_an_unknown_toy_are_rejected() {
        let history = [ok_order(1, (0.0, 1.0), "k-0", 0)];
        let mut state = state(&[stored(0, "k-0", "Tux")]);
        state.catalog.toys.remove(0);
        let report = check(&history, &state);
        let unknown: Vec<_> = report.of_kind(ViolationKind::UnknownToy).collect();
        assert_eq!(unknown.len(), 1);
        assert_eq!(unknown[0].ops, vec![0]);
    }
}
