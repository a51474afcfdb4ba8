//! Check `reservations-match` (CONTRACT.md §6.4, record by record): every unit sold belongs
//! to an order, and every order's units were sold.
//!
//! Stock conservation (check `stock-conservation`) sums counters the catalog reports about
//! itself, so two errors that cancel out pass it: attempt 0 of a key abandoned yet confirmed,
//! attempt 1 committed yet released, same toy and quantity. This check matches the catalog's
//! reservation records with the replicas' orders one to one, by (request id, attempt):
//!
//! - a confirmed reservation has an order with its request id and attempt, for the same toy
//!   and quantity, and only one;
//! - an order has a confirmed reservation with its request id and attempt;
//! - a released, refused or pending reservation has no order.
//!
//! The catalog forgets finished records after its retention and says up to when
//! (`forgotten_through_ms`). A record is missing rightly only if it can have finished by then,
//! which needs its order to have been placed by then: an order the history shows sent only
//! after that time (plus [`CLOCK_MARGIN_MS`] for the two clocks) must still have its record.
//! An order whose key the history never sent may be of any age.

use std::collections::BTreeMap;

use super::{Ctx, Violation, ViolationKind, describe_stored};
use crate::state::{ReservationStatus, StoredOrder};

/// How far the client's clock (the history's times) and the catalog's may disagree.
pub const CLOCK_MARGIN_MS: f64 = 1_000.0;

/// How many violations of each rule are reported one by one; the rest are counted.
const MAX_LISTED: usize = 20;

#[derive(Default)]
struct Rule {
    listed: Vec<Violation>,
    more: usize,
}

impl Rule {
    fn push(&mut self, violation: Violation) {
        if self.listed.len() < MAX_LISTED {
            self.listed.push(violation);
        } else {
            self.more += 1;
        }
    }
}

/// Check: reservations and orders match one to one.
pub(crate) fn matched(ctx: &Ctx<'_>) -> Vec<Violation> {
    let Some(records) = &ctx.state.catalog.reservations else {
        return vec![Violation::new(
            ViolationKind::ReservationMismatch,
            "the final state lists no reservation records: no order can be matched with the stock it took".to_string(),
            Vec::new(),
        )];
    };
    let Some(reference) = ctx.reference() else {
        return Vec::new(); // check `replicas-identical` reports it
    };
    let forgotten = ctx.state.catalog.forgotten_through_ms;
    // When the order may have been placed first: the earliest its record can have been made.
    let may_be_forgotten = |order: &StoredOrder| {
        let placed = ctx.write_span(order.request_id.as_deref(), order.number).0;
        forgotten.is_some_and(|through| placed <= through + CLOCK_MARGIN_MS)
    };

    let mut orders_by_id: BTreeMap<(&str, u32), Vec<&StoredOrder>> = BTreeMap::new();
    let mut rules: BTreeMap<&'static str, Rule> = BTreeMap::new();
    for &order in &reference.orders {
        match (order.request_id.as_deref(), order.attempt) {
            (Some(key), Some(attempt)) => orders_by_id.entry((key, attempt)).or_default().push(order),
            _ => rules.entry("unmatchable").or_default().push(Violation::new(
                ViolationKind::ReservationMismatch,
                format!(
                    "replica {} holds {} without a request id and attempt: its reservation cannot be found",
                    reference.id,
                    describe_stored(order)
                ),
                ctx.key_ops(order.request_id.as_deref()),
            )),
        }
    }
    let mut records_by_id = BTreeMap::new();
    for record in records {
        let id = (record.request_id.as_str(), record.attempt);
        if records_by_id.insert(id, record).is_some() {
            rules.entry("duplicate").or_default().push(Violation::new(
                ViolationKind::ReservationMismatch,
                format!(
                    "the catalog lists reservation {}#{} twice",
                    record.request_id, record.attempt
                ),
                ctx.key_ops(Some(&record.request_id)),
            ));
        }
    }

    for (&(key, attempt), record) in &records_by_id {
        let orders = orders_by_id
            .get(&(key, attempt))
            .map_or(&[][..], Vec::as_slice);
        let involved = || ctx.key_ops(Some(key));
        let id = format!(
            "reservation {key}#{attempt} ({}×{:?})",
            record.quantity, record.name
        );
        let described = || {
            orders
                .iter()
                .map(|o| describe_stored(o))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match record.status {
            ReservationStatus::Confirmed => {
                if orders.is_empty() {
                    rules.entry("confirmed-without-order").or_default().push(Violation::new(
                        ViolationKind::ReservationMismatch,
                        format!("{id} is confirmed (sold), but no replica holds an order with its request id and attempt"),
                        involved(),
                    ));
                }
                let remembered = orders.iter().filter(|o| !may_be_forgotten(o)).count();
                if remembered > 1 {
                    rules.entry("shared").or_default().push(Violation::new(
                        ViolationKind::ReservationMismatch,
                        format!("{id} is held by {remembered} orders: {}", described()),
                        involved(),
                    ));
                }
                if let Some(other) = orders
                    .iter()
                    .find(|o| o.name != record.name || o.quantity != record.quantity)
                    && orders.len() == 1
                {
                    rules.entry("different").or_default().push(Violation::new(
                        ViolationKind::ReservationMismatch,
                        format!("{id} is confirmed for {}", describe_stored(other)),
                        involved(),
                    ));
                }
            }
            status => {
                // An order may hold this id only if it is an older one whose own record was
                // forgotten (the key was used again after both sides forgot it).
                let held: Vec<&&StoredOrder> =
                    orders.iter().filter(|o| !may_be_forgotten(o)).collect();
                if !held.is_empty() {
                    let state = match status {
                        ReservationStatus::Pending => "still pending (never settled)",
                        ReservationStatus::Released => "released (its stock given back)",
                        ReservationStatus::Refused => "refused (it took no stock)",
                        ReservationStatus::Confirmed => "confirmed",
                    };
                    rules
                        .entry("order-not-sold")
                        .or_default()
                        .push(Violation::new(
                            ViolationKind::ReservationMismatch,
                            format!("{id} is {state}, yet the replicas hold {}", described()),
                            involved(),
                        ));
                } else if status == ReservationStatus::Pending {
                    rules.entry("pending").or_default().push(Violation::new(
                        ViolationKind::ReservationMismatch,
                        format!("{id} is still pending after the store settled"),
                        involved(),
                    ));
                }
            }
        }
    }
    for (&(key, attempt), orders) in &orders_by_id {
        if records_by_id.contains_key(&(key, attempt)) {
            continue;
        }
        for order in orders.iter().filter(|o| !may_be_forgotten(o)) {
            let why = match forgotten {
                Some(through) => format!(
                    "the catalog forgot only records finished by {}, and the order was placed later",
                    ctx.at(through)
                ),
                None => "the catalog never forgot a record".to_string(),
            };
            rules
                .entry("order-without-reservation")
                .or_default()
                .push(Violation::new(
                    ViolationKind::ReservationMismatch,
                    format!(
                        "{} has no reservation {key}#{attempt} in the catalog ({why})",
                        describe_stored(order)
                    ),
                    ctx.key_ops(Some(key)),
                ));
        }
    }

    let mut violations = Vec::new();
    for (name, rule) in rules {
        violations.extend(rule.listed);
        if rule.more > 0 {
            violations.push(Violation::new(
                ViolationKind::ReservationMismatch,
                format!("… and {} more of the same kind ({name})", rule.more),
                Vec::new(),
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
    use crate::state::{Reservation, ReservationStatus};

    fn reservation(key: &str, attempt: u32, status: ReservationStatus) -> Reservation {
        Reservation {
            request_id: key.into(),
            attempt,
            name: "Tux".into(),
            quantity: 1,
            status,
        }
    }

    /// Finding 4 of issue 25: attempt 0 of k-0 was abandoned yet confirmed, attempt 1
    /// committed yet released. Same toy, same quantity: the stock adds up, and the old
    /// checker (which only summed the catalog's counters) accepted it.
    #[test]
    fn errors_that_cancel_out_in_the_stock_are_rejected() {
        let history = [ok_order(1, (0.0, 10.0), "k-0", 0)];
        let mut order = stored(0, "k-0", "Tux");
        order.attempt = Some(1);
        let mut state = state(&[order]);
        state.catalog.reservations = Some(vec![
            reservation("k-0", 0, ReservationStatus::Confirmed),
            reservation("k-0", 1, ReservationStatus::Released),
        ]);
        let report = check(&history, &state);
        assert_eq!(report.of_kind(ViolationKind::StockMismatch).count(), 0);
        let mismatches: Vec<_> = report.of_kind(ViolationKind::ReservationMismatch).collect();
        assert_eq!(mismatches.len(), 2, "{:#?}", report.violations);
        assert!(
            mismatches[0].message.contains("k-0#0") && mismatches[0].message.contains("no replica"),
            "{}",
            mismatches[0].message
        );
        assert!(
            mismatches[1].message.contains("k-0#1") && mismatches[1].message.contains("released"),
            "{}",
            mismatches[1].message
        );
        assert_eq!(report.violations.len(), 2, "{:#?}", report.violations);
    }

    #[test]
    fn an_order_without_its_reservation_and_a_listing_that_is_missing_are_rejected() {
        let history = [ok_order(1, (0.0, 10.0), "k-0", 0)];
        let mut state = state(&[stored(0, "k-0", "Tux")]);
        state.catalog.reservations = Some(Vec::new());
        let report = check(&history, &state);
        assert_eq!(
            report.of_kind(ViolationKind::ReservationMismatch).count(),
            1,
            "{:#?}",
            report.violations
        );
        state.catalog.reservations = None;
        let report = check(&history, &state);
        assert_eq!(
            report.of_kind(ViolationKind::ReservationMismatch).count(),
            1
        );
    }

    #[test]
    fn forgotten_records_excuse_only_orders_placed_before_they_were_forgotten() {
        // k-0 placed at t=0 and its record forgotten (records finished by t=50 are gone);
        // k-1 placed at t=100 must still have its record.
        let history = [
            ok_order(1, (0.0, 10.0), "k-0", 0),
            ok_order(1, (100.0, 110.0), "k-1", 1),
        ];
        let mut forgot = state(&[stored(0, "k-0", "Tux"), stored(1, "k-1", "Tux")]);
        forgot.catalog.reservations = Some(Vec::new());
        forgot.catalog.forgotten_through_ms = Some(50.0 - super::CLOCK_MARGIN_MS);
        let report = check(&history, &forgot);
        let missing: Vec<_> = report.of_kind(ViolationKind::ReservationMismatch).collect();
        assert_eq!(missing.len(), 1, "{:#?}", report.violations);
        assert!(
            missing[0].message.contains("#1 key k-1"),
            "{}",
            missing[0].message
        );
        // The key used again after both sides forgot it: attempt 0 twice, one record.
        let history = [ok_order(1, (0.0, 10.0), "k-0", 0)];
        let mut again = stored(1, "k-0", "Tux");
        again.attempt = Some(0);
        let mut reused = state(&[stored(0, "k-0", "Tux"), again]);
        reused.catalog.forgotten_through_ms = Some(50.0 - super::CLOCK_MARGIN_MS);
        reused.catalog.reservations =
            Some(vec![reservation("k-0", 0, ReservationStatus::Confirmed)]);
        assert!(
            check(&history, &reused)
                .of_kind(ViolationKind::ReservationMismatch)
                .next()
                .is_none()
        );
    }
}
