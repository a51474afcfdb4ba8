//! Check `query-answers`: what product answers say must hang together.
//!
//! - Every `ok` product answer carries the version of the stock it shows (its `ETag`): an
//!   answer without one could show any stock at all and no other check could judge it, so it
//!   is a protocol error, not an unknown.
//! - A version names one stock level: two answers for one toy at one version show the same
//!   quantity. (Versions grow with every change of the toy's stock and are never reused,
//!   also across a catalog crash; CONTRACT.md §2.)

use std::collections::HashMap;

use super::{Ctx, Violation, ViolationKind};
use crate::history::{Event, Outcome};

/// How many answers without a version are reported one by one; the rest are counted.
const MAX_LISTED: usize = 10;

/// Check: versions present, and one quantity per (toy, version).
pub(crate) fn query_answers(ctx: &Ctx<'_>) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut unversioned: Vec<usize> = Vec::new();
    // (toy, version) → (quantity, first op showing it), and the conflicts found per key.
    let mut shown: HashMap<(&str, u64), (u32, usize)> = HashMap::new();
    let mut conflicts: HashMap<(&str, u64), Vec<usize>> = HashMap::new();
    for (i, event) in ctx.history.iter().enumerate() {
        let Event::Query(query) = event else { continue };
        if query.outcome != Outcome::Ok {
            continue;
        }
        let (Some(quantity), Some(version)) = (query.quantity, query.version) else {
            unversioned.push(i);
            continue;
        };
        let key = (query.toy.as_str(), version);
        let &mut (first_quantity, first_op) = shown.entry(key).or_insert((quantity, i));
        if first_quantity != quantity {
            conflicts
                .entry(key)
                .or_insert_with(|| vec![first_op])
                .push(i);
        }
    }
    for &op in unversioned.iter().take(MAX_LISTED) {
        let Event::Query(query) = &ctx.history[op] else {
            continue;
        };
        violations.push(Violation::new(
            ViolationKind::ProtocolError,
            format!(
                "the answer to a query of {:?} at {} carried no version (ETag){}",
                query.toy,
                ctx.at(query.invoke),
                query
                    .error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
            vec![op],
        ));
    }
    if unversioned.len() > MAX_LISTED {
        violations.push(Violation::new(
            ViolationKind::ProtocolError,
            format!(
                "{} more answers to queries carried no version (ETag)",
                unversioned.len() - MAX_LISTED
            ),
            Vec::new(),
        ));
    }
    let mut conflicts: Vec<_> = conflicts.into_iter().collect();
    conflicts.sort_by_key(|(_, ops)| ops[0]);
    for ((toy, version), mut ops) in conflicts {
        let quantities: Vec<String> = ops
            .iter()
            .filter_map(|&op| match &ctx.history[op] {
                Event::Query(q) => q.quantity.map(|n| n.to_string()),
                _ => None,
            })
            .collect();
        ops.truncate(MAX_LISTED);
        violations.push(Violation::new(
            ViolationKind::VersionConflict,
            format!(
                "{toy:?} at version {version} was shown with different quantities: {}",
                quantities.join(", ")
            ),
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
    use crate::history::Event;

    /// Finding 5 of issue 25: an answer without an ETag was recorded as `unknown` and passed
    /// unseen, and quantities were never compared across answers of one version.
    #[test]
    fn an_answer_without_a_version_and_two_quantities_for_one_version_are_rejected() {
        let mut history = vec![
            query(1, (0.0, 1.0), "Tux", 5),
            query(2, (2.0, 3.0), "Tux", 5),
            query(3, (4.0, 5.0), "Tux", 6),
        ];
        if let Event::Query(q) = &mut history[1] {
            q.quantity = Some(99); // version 5 was 100 a moment ago
        }
        if let Event::Query(q) = &mut history[2] {
            q.version = None;
            q.error = Some("the answer carried no ETag".into());
        }
        let report = check(&history, &state(&[]));
        let conflicts: Vec<_> = report.of_kind(ViolationKind::VersionConflict).collect();
        assert_eq!(conflicts.len(), 1, "{:?}", report.violations);
        assert_eq!(conflicts[0].ops, vec![0, 1]);
        assert!(
            conflicts[0].message.contains("100, 99"),
            "{}",
            conflicts[0].message
        );
        let protocol: Vec<_> = report.of_kind(ViolationKind::ProtocolError).collect();
        assert_eq!(protocol.len(), 1, "{:?}", report.violations);
        assert_eq!(protocol[0].ops, vec![2]);
        assert_eq!(report.violations.len(), 2);
    }

    #[test]
    fn one_quantity_per_version_is_accepted() {
        let history = [
            query(1, (0.0, 1.0), "Tux", 5),
            query(2, (2.0, 3.0), "Tux", 5),
            query(3, (4.0, 5.0), "Lego", 5),
        ];
        assert!(check(&history, &state(&[])).is_ok());
    }
}
