//! Check of deliberately reused keys (§9.2 across the dedup retention): the client re-sends
//! an `Idempotency-Key` whose order #n was answered before, some within the store's dedup
//! retention and some after it (`Order::reuse`).
//!
//! - Within the window (the order was placed at most retention − [`REUSE_MARGIN_MS`] before
//!   the re-send's answer): the store must still remember the key, so the only right answer
//!   is #n, like any retry (or no answer at all).
//! - Otherwise the store may still remember it (the replicas' clock only moves with log
//!   entries), may have forgotten it and place a new order (a number above #n, which check 4
//!   then requires on every replica with this key), or may refuse it: 409 with reason
//!   `request_id_expired` (the catalog's record of the key's reservation outlives the
//!   replicas' record) or 400 `out_of_stock` (a new order with no stock). An older number, or
//!   any other refusal, is wrong.
//!
//! That a refused or deduplicated re-send placed no order anyway is check 3's part: the key
//! may hold only as many orders as the re-sends that may have placed one allow.
//!
//! Refusals are judged by the reason the store's answer gave (the envelope's `reason`, which
//! the history records), never by the words of its message, which are for people.
//!
//! Check `refusals`: the client sends every key with one toy and quantity, so no correct store
//! refuses an order as `request_id_reused` ("used for a different order").

use std::collections::HashMap;

use super::{Ctx, Violation, ViolationKind};
use crate::history::{Event, Order, Outcome, REUSE_MARGIN_MS, Reuse};

/// The reasons a re-send past the window may be refused with.
const ALLOWED_REASONS: &[&str] = &["request_id_expired", "out_of_stock"];

/// Whether a refusal of a re-send past the window is one the store may give.
fn allowed_refusal(order: &Order) -> bool {
    order
        .reason
        .as_deref()
        .is_some_and(|reason| ALLOWED_REASONS.contains(&reason))
}

fn window(ctx: &Ctx<'_>, order: &Order, reuse: &Reuse) -> String {
    format!(
        "key {} re-sent at {} for #{} ({:.1}s after it was answered, its order placed at most {:.1}s before this answer; retention {:.1}s, margin {:.1}s)",
        order.key,
        ctx.at(order.invoke),
        reuse.number,
        reuse.answered_ms / 1000.0,
        reuse.placed_ms / 1000.0,
        reuse.retention_ms / 1000.0,
        REUSE_MARGIN_MS / 1000.0
    )
}

/// Check: every deliberate re-send got an answer its place relative to the window allows.
pub(crate) fn reused_keys(ctx: &Ctx<'_>) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (i, event) in ctx.history.iter().enumerate() {
        let Event::Order(order) = event else { continue };
        let Some(reuse) = &order.reuse else { continue };
        let involved = || {
            let mut ops = ctx.key_ops(Some(order.key.as_str()));
            ops.push(i);
            ops
        };
        let refusal = || {
            format!(
                "{} {} ({})",
                order
                    .status
                    .map_or_else(|| "a refusal".to_string(), |s| s.to_string()),
                order.reason.as_deref().unwrap_or("no reason given"),
                order.error.as_deref().unwrap_or("without a message")
            )
        };
        match (order.outcome, order.number) {
            (Outcome::Unknown, _) => {}
            (Outcome::Ok, Some(number)) if number == reuse.number => {}
            (Outcome::Ok, Some(number)) if reuse.must_dedup() => {
                violations.push(Violation::new(
                    ViolationKind::ReuseNotDeduplicated,
                    format!(
                        "{} within the window was answered #{number}, not #{}",
                        window(ctx, order, reuse),
                        reuse.number
                    ),
                    involved(),
                ));
            }
            (Outcome::Ok, Some(number)) if number < reuse.number => {
                violations.push(Violation::new(
                    ViolationKind::ReuseWrongAnswer,
                    format!(
                        "{} was answered #{number}: neither its order nor a new one (a new order's number is above #{})",
                        window(ctx, order, reuse),
                        reuse.number
                    ),
                    involved(),
                ));
            }
            (Outcome::Ok, _) => {} // a new order: check 4 requires it on every replica
            (Outcome::Fail, _) if reuse.must_dedup() => {
                violations.push(Violation::new(
                    ViolationKind::ReuseNotDeduplicated,
                    format!(
                        "{} within the window was refused ({}), not answered #{}",
                        window(ctx, order, reuse),
                        refusal(),
                        reuse.number
                    ),
                    involved(),
                ));
            }
            (Outcome::Fail, _) if allowed_refusal(order) => {}
            (Outcome::Fail, _) => {
                violations.push(Violation::new(
                    ViolationKind::ReuseWrongAnswer,
                    format!(
                        "{} was refused with {}: only #{}, a new order, request_id_expired or out_of_stock may answer it",
                        window(ctx, order, reuse),
                        refusal(),
                        reuse.number
                    ),
                    involved(),
                ));
            }
        }
    }
    violations
}

/// Check `refusals`: no `request_id_reused` refusal for a key the history only ever sent with
/// one toy and quantity.
pub(crate) fn refusals(ctx: &Ctx<'_>) -> Vec<Violation> {
    // Per key: the (toy, quantity) pairs it was sent with.
    let mut sent: HashMap<&str, Vec<(&str, u32)>> = HashMap::new();
    for event in ctx.history {
        if let Event::Order(order) = event {
            let pairs = sent.entry(order.key.as_str()).or_default();
            if !pairs.contains(&(order.toy.as_str(), order.quantity)) {
                pairs.push((order.toy.as_str(), order.quantity));
            }
        }
    }
    let mut violations = Vec::new();
    for (i, event) in ctx.history.iter().enumerate() {
        let Event::Order(order) = event else { continue };
        if order.outcome != Outcome::Fail || order.reason.as_deref() != Some("request_id_reused") {
            continue;
        }
        if sent
            .get(order.key.as_str())
            .is_some_and(|pairs| pairs.len() == 1)
        {
            let mut ops = ctx.key_ops(Some(order.key.as_str()));
            ops.push(i);
            violations.push(Violation::new(
                ViolationKind::WrongRefusal,
                format!(
                    "order key {} ({}×{:?}) was refused at {} as used for a different order, but the key was only ever sent for {}×{:?}",
                    order.key,
                    order.quantity,
                    order.toy,
                    ctx.at(order.complete),
                    order.quantity,
                    order.toy
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
    use crate::history::Outcome;

    const EXPIRED: Option<(u16, &str)> = Some((409, "request_id_expired"));

    /// k-a placed as #0 at t=0; re-sent 5 s later (deduplicated), 25 s later (a new order
    /// #2), 26 s later (deduplicated to #2), 50 s later (refused: expired), 51 s later with no
    /// answer; k-b placed in between as #1. Every answer is one the store may give.
    #[test]
    fn reuses_within_and_after_the_window_are_accepted() {
        let history = [
            ok_order(1, (0.0, 10.0), "k-a", 0),
            reuse(
                (5_000.0, 5_010.0),
                "k-a",
                0,
                5.01,
                4.99,
                Outcome::Ok,
                Some(0),
                None,
            ),
            ok_order(2, (6_000.0, 6_010.0), "k-b", 1),
            reuse(
                (25_000.0, 25_020.0),
                "k-a",
                0,
                25.02,
                24.99,
                Outcome::Ok,
                Some(2),
                None,
            ),
            reuse(
                (26_000.0, 26_010.0),
                "k-a",
                2,
                1.01,
                0.98,
                Outcome::Ok,
                Some(2),
                None,
            ),
            reuse(
                (50_000.0, 50_010.0),
                "k-a",
                2,
                25.01,
                23.99,
                Outcome::Fail,
                None,
                EXPIRED,
            ),
            reuse(
                (51_000.0, 61_000.0),
                "k-a",
                2,
                36.0,
                25.0,
                Outcome::Unknown,
                None,
                None,
            ),
        ];
        let state = state(&[
            stored(0, "k-a", "Tux"),
            stored(1, "k-b", "Tux"),
            stored(2, "k-a", "Tux"),
        ]);
        let report = check(&history, &state);
        assert!(report.is_ok(), "{:#?}", report.violations);
    }

    #[test]
    fn a_new_number_within_the_window_is_rejected() {
        // Re-sent 10 s after its order was placed, with a 20 s retention: must be #0.
        let history = [
            ok_order(1, (0.0, 10.0), "k-a", 0),
            reuse(
                (10_000.0, 10_010.0),
                "k-a",
                0,
                10.01,
                9.99,
                Outcome::Ok,
                Some(1),
                None,
            ),
        ];
        let state = state(&[stored(0, "k-a", "Tux"), stored(1, "k-a", "Tux")]);
        let report = check(&history, &state);
        let wrong: Vec<_> = report
            .of_kind(ViolationKind::ReuseNotDeduplicated)
            .collect();
        assert_eq!(wrong.len(), 1, "{:#?}", report.violations);
        assert!(
            wrong[0].message.contains("#1, not #0"),
            "{}",
            wrong[0].message
        );
        assert_eq!(wrong[0].ops, vec![0, 1]);
        // The second order of k-a is also one order too many for the history.
        assert_eq!(report.of_kind(ViolationKind::DuplicateRequestId).count(), 4);
    }

    #[test]
    fn a_refusal_within_the_window_is_rejected() {
        let history = [
            ok_order(1, (0.0, 10.0), "k-a", 0),
            reuse(
                (17_000.0, 17_010.0),
                "k-a",
                0,
                17.01,
                16.99,
                Outcome::Fail,
                None,
                EXPIRED,
            ),
        ];
        let report = check(&history, &state(&[stored(0, "k-a", "Tux")]));
        assert_eq!(report.violations.len(), 1, "{:#?}", report.violations);
        assert_eq!(
            report.violations[0].kind,
            ViolationKind::ReuseNotDeduplicated
        );
    }

    #[test]
    fn an_older_number_or_another_refusal_after_the_window_is_rejected() {
        let history = [
            ok_order(1, (0.0, 10.0), "k-a", 0),
            ok_order(2, (1_000.0, 1_010.0), "k-b", 1),
            // A new order #2 for k-a past the window, …
            reuse(
                (25_000.0, 25_010.0),
                "k-a",
                0,
                25.01,
                24.99,
                Outcome::Ok,
                Some(2),
                None,
            ),
            // … then past #2's window the store answers the forgotten #0: wrong.
            reuse(
                (50_000.0, 50_010.0),
                "k-a",
                2,
                25.01,
                24.99,
                Outcome::Ok,
                Some(0),
                None,
            ),
            // A 404 is not a refusal the store may give a reused key.
            reuse(
                (23_000.0, 23_010.0),
                "k-b",
                1,
                22.01,
                21.99,
                Outcome::Fail,
                None,
                Some((404, "unknown_toy")),
            ),
            // Nor is a 409 whose reason is not request_id_expired, whatever its message says.
            reuse(
                (24_000.0, 24_010.0),
                "k-b",
                1,
                23.01,
                22.99,
                Outcome::Fail,
                None,
                Some((409, "other")),
            ),
        ];
        let state = state(&[
            stored(0, "k-a", "Tux"),
            stored(1, "k-b", "Tux"),
            stored(2, "k-a", "Tux"),
        ]);
        let report = check(&history, &state);
        let wrong: Vec<_> = report.of_kind(ViolationKind::ReuseWrongAnswer).collect();
        assert_eq!(wrong.len(), 3, "{:#?}", report.violations);
        assert!(
            wrong[0].message.contains("answered #0"),
            "{}",
            wrong[0].message
        );
        assert!(wrong[1].message.contains("404"), "{}", wrong[1].message);
        assert!(
            wrong[2].message.contains("409 other"),
            "{}",
            wrong[2].message
        );
        assert_eq!(report.violations.len(), 3, "{:#?}", report.violations);
    }

    /// Refusals are judged by their reason: a 409 whose message has the words the old check
    /// looked for ("already used") but whose reason says the key was used for a different
    /// order is not an answer the store may give, to a re-send or to any order of one key.
    #[test]
    fn a_refusal_is_judged_by_its_reason_not_its_words() {
        let mut history = vec![
            ok_order(1, (0.0, 10.0), "k-a", 0),
            reuse(
                (25_000.0, 25_010.0),
                "k-a",
                0,
                25.01,
                24.99,
                Outcome::Fail,
                None,
                Some((409, "request_id_reused")),
            ),
        ];
        if let crate::history::Event::Order(order) = &mut history[1] {
            order.error = Some("request id \"k-a\" was already used for a different order".into());
        }
        let report = check(&history, &state(&[stored(0, "k-a", "Tux")]));
        assert_eq!(
            report.of_kind(ViolationKind::ReuseWrongAnswer).count(),
            1,
            "{:#?}",
            report.violations
        );
        let wrong: Vec<_> = report.of_kind(ViolationKind::WrongRefusal).collect();
        assert_eq!(wrong.len(), 1, "{:#?}", report.violations);
        assert_eq!(wrong[0].ops, vec![0, 1]);
        assert_eq!(report.violations.len(), 2, "{:#?}", report.violations);
    }

    #[test]
    fn a_new_order_that_is_not_on_every_replica_is_rejected() {
        // Past the window k-a was answered #1, but no replica holds #1 for k-a.
        let history = [
            ok_order(1, (0.0, 10.0), "k-a", 0),
            reuse(
                (25_000.0, 25_010.0),
                "k-a",
                0,
                25.01,
                24.99,
                Outcome::Ok,
                Some(1),
                None,
            ),
        ];
        let mut state = state(&[stored(0, "k-a", "Tux"), stored(1, "k-a", "Tux")]);
        state.replicas[2].orders.pop();
        state.replicas[1].orders[1].request_id = Some("k-z".into());
        let report = check(&history, &state);
        assert_eq!(report.of_kind(ViolationKind::LostOrder).count(), 1);
        assert_eq!(report.of_kind(ViolationKind::ChangedOrder).count(), 1);
        assert_eq!(report.of_kind(ViolationKind::ReuseWrongAnswer).count(), 0);
    }

    #[test]
    fn a_second_order_for_a_deduplicated_or_refused_key_is_rejected() {
        // Every re-send of k-a was answered #0 or refused, yet the replicas hold it twice.
        let history = [
            ok_order(1, (0.0, 10.0), "k-a", 0),
            reuse(
                (5_000.0, 5_010.0),
                "k-a",
                0,
                5.01,
                4.99,
                Outcome::Ok,
                Some(0),
                None,
            ),
            reuse(
                (30_000.0, 30_010.0),
                "k-a",
                0,
                30.01,
                29.99,
                Outcome::Ok,
                Some(0),
                None,
            ),
            reuse(
                (60_000.0, 60_010.0),
                "k-a",
                0,
                60.01,
                59.99,
                Outcome::Fail,
                None,
                EXPIRED,
            ),
        ];
        let state = state(&[stored(0, "k-a", "Tux"), stored(1, "k-a", "Tux")]);
        let report = check(&history, &state);
        let twice: Vec<_> = report.of_kind(ViolationKind::DuplicateRequestId).collect();
        assert_eq!(twice.len(), 3, "{:#?}", report.violations);
        assert!(
            twice[0].message.contains("deduplicated, refused"),
            "{}",
            twice[0].message
        );
        assert_eq!(report.violations.len(), 3, "{:#?}", report.violations);
    }

    #[test]
    fn only_a_re_send_that_placed_its_order_itself_moves_read_your_writes() {
        // Session 9 sees version 5, re-sends k-a (deduplicated: no stock change), then still
        // sees version 5: right. Past the window a re-send places #1, yet the next query
        // still shows version 6, the stock before it: a stale read.
        let history = [
            ok_order(9, (0.0, 10.0), "k-a", 0),
            query(9, (1_000.0, 1_001.0), "Tux", 5),
            reuse(
                (2_000.0, 2_010.0),
                "k-a",
                0,
                2.01,
                1.99,
                Outcome::Ok,
                Some(0),
                None,
            ),
            query(9, (3_000.0, 3_001.0), "Tux", 5),
            query(9, (24_000.0, 24_001.0), "Tux", 6),
            reuse(
                (25_000.0, 25_010.0),
                "k-a",
                0,
                25.01,
                24.99,
                Outcome::Ok,
                Some(1),
                None,
            ),
            query(9, (26_000.0, 26_001.0), "Tux", 6),
        ];
        let state = state(&[stored(0, "k-a", "Tux"), stored(1, "k-a", "Tux")]);
        let report = check(&history, &state);
        let stale: Vec<_> = report.of_kind(ViolationKind::ReadYourWrites).collect();
        assert_eq!(stale.len(), 1, "{:#?}", report.violations);
        assert!(stale[0].ops.contains(&6), "{:?}", stale[0].ops);
        assert_eq!(report.violations.len(), 1, "{:#?}", report.violations);
    }

    #[test]
    fn a_reuse_with_no_answer_past_the_window_may_have_placed_one_order_not_two() {
        let unknown = |at: f64, last| {
            reuse(
                (at, at + 10_000.0),
                "k-a",
                last,
                at / 1000.0 + 10.0,
                at / 1000.0,
                Outcome::Unknown,
                None,
                None,
            )
        };
        let history = [ok_order(1, (0.0, 10.0), "k-a", 0), unknown(25_000.0, 0)];
        let two = state(&[stored(0, "k-a", "Tux"), stored(1, "k-a", "Tux")]);
        assert!(check(&history, &two).is_ok());
        let three = state(&[
            stored(0, "k-a", "Tux"),
            stored(1, "k-a", "Tux"),
            stored(2, "k-a", "Tux"),
        ]);
        assert_eq!(
            check(&history, &three)
                .of_kind(ViolationKind::DuplicateRequestId)
                .count(),
            3
        );
    }
}
