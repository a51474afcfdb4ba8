//! Checking the orders the store acknowledged against what it now says it holds.
//!
//! Pure functions over what the sessions recorded and what the lookups answered, so the rules
//! (lost, changed, handed out twice) are tested without a store.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use api::order::OrderRecord;
use serde::Serialize;

/// An order the store acknowledged, as this client placed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlacedOrder {
    pub number: u64,
    pub name: String,
    pub quantity: u32,
    /// The session that placed it.
    pub session: u64,
}

impl fmt::Display for PlacedOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} x {:?} (session {})",
            self.quantity, self.name, self.session
        )
    }
}

/// What `GET /orders/{number}` said about one order number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupAnswer {
    Found(OrderRecord),
    /// 404: the store does not have it.
    NotFound,
    /// No usable answer even after retries. Counted as a lookup error, not as a verification
    /// failure: it says nothing about whether the order is stored.
    Failed(String),
}

/// One way the store broke a promise about an acknowledged order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerificationFailure {
    /// The store answers 404 for an order it acknowledged.
    Lost { expected: PlacedOrder },
    /// The store holds something else under this order's number.
    Mismatch {
        expected: PlacedOrder,
        got: OrderRecord,
    },
    /// The same number was acknowledged for two different orders.
    Duplicate {
        number: u64,
        first: PlacedOrder,
        second: PlacedOrder,
    },
}

impl VerificationFailure {
    pub fn number(&self) -> u64 {
        match self {
            Self::Lost { expected } | Self::Mismatch { expected, .. } => expected.number,
            Self::Duplicate { number, .. } => *number,
        }
    }

    /// `lost`, `mismatch` or `duplicate`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Lost { .. } => "lost",
            Self::Mismatch { .. } => "mismatch",
            Self::Duplicate { .. } => "duplicate",
        }
    }
}

impl fmt::Display for VerificationFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lost { expected } => write!(
                f,
                "order {}: lost: expected {expected}, got 404 (no such order)",
                expected.number
            ),
            Self::Mismatch { expected, got } => write!(
                f,
                "order {}: mismatch: expected {expected}, got order {} = {} x {:?}",
                expected.number, got.number, got.quantity, got.name
            ),
            Self::Duplicate {
                number,
                first,
                second,
            } => write!(
                f,
                "order {number}: handed out twice: to {first} and to {second}"
            ),
        }
    }
}

/// Every failure among `placed`, given the lookup answers by order number, sorted by number.
///
/// Each placed order is compared with the store's answer for its number, so when a number was
/// handed out twice the report shows both the duplicate and which copy the store disagrees
/// with. Numbers with no answer, or a [`LookupAnswer::Failed`] one, are skipped: they are
/// request errors, reported as such.
pub fn verify(
    placed: &[PlacedOrder],
    answers: &HashMap<u64, LookupAnswer>,
) -> Vec<VerificationFailure> {
    let mut failures = Vec::new();
    let mut first_by_number: BTreeMap<u64, &PlacedOrder> = BTreeMap::new();
    for order in placed {
        if let Some(first) = first_by_number.get(&order.number) {
            failures.push(VerificationFailure::Duplicate {
                number: order.number,
                first: (*first).clone(),
                second: order.clone(),
            });
        } else {
            first_by_number.insert(order.number, order);
        }
        match answers.get(&order.number) {
            Some(LookupAnswer::Found(record)) if !matches(order, record) => {
                failures.push(VerificationFailure::Mismatch {
                    expected: order.clone(),
                    got: record.clone(),
                });
            }
            Some(LookupAnswer::NotFound) => {
                failures.push(VerificationFailure::Lost {
                    expected: order.clone(),
                });
            }
            Some(LookupAnswer::Found(_) | LookupAnswer::Failed(_)) | None => {}
        }
    }
    // Stable: for one number, the duplicate comes before the per-copy findings in input order.
    failures.sort_by_key(VerificationFailure::number);
    failures
}

fn matches(order: &PlacedOrder, record: &OrderRecord) -> bool {
    record.number == order.number && record.name == order.name && record.quantity == order.quantity
}

/// The distinct order numbers to look up, in ascending order.
pub fn numbers_to_look_up(placed: &[PlacedOrder]) -> Vec<u64> {
    let mut numbers: Vec<u64> = placed.iter().map(|o| o.number).collect();
    numbers.sort_unstable();
    numbers.dedup();
    numbers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed(number: u64, name: &str, quantity: u32, session: u64) -> PlacedOrder {
        PlacedOrder {
            number,
            name: name.into(),
            quantity,
            session,
        }
    }

    fn found(number: u64, name: &str, quantity: u32) -> LookupAnswer {
        LookupAnswer::Found(OrderRecord {
            number,
            name: name.into(),
            quantity,
        })
    }

    #[test]
    fn matching_orders_verify() {
        let orders = [placed(0, "Tux", 1, 0), placed(1, "Rubik's Cube", 2, 1)];
        let answers = HashMap::from([(0, found(0, "Tux", 1)), (1, found(1, "Rubik's Cube", 2))]);
        assert_eq!(verify(&orders, &answers), vec![]);
    }

    #[test]
    fn finds_lost_changed_and_duplicated_orders() {
        let orders = [
            placed(5, "Tux", 1, 0),
            placed(2, "Lego", 1, 0),
            placed(3, "Slinky", 1, 1),
            placed(2, "Lego", 1, 2),
            placed(7, "Yo-yo", 1, 1),
            placed(8, "Frisbee", 1, 1),
        ];
        let answers = HashMap::from([
            (5, LookupAnswer::NotFound),
            (2, found(2, "Lego", 1)),
            (3, found(3, "Slinky", 2)),
            (7, found(7, "Barbie", 1)),
            (8, LookupAnswer::Failed("503".into())),
        ]);
        let failures = verify(&orders, &answers);
        let summary: Vec<(u64, &str)> = failures.iter().map(|f| (f.number(), f.kind())).collect();
        assert_eq!(
            summary,
            [
                (2, "duplicate"),
                (3, "mismatch"),
                (5, "lost"),
                (7, "mismatch")
            ]
        );
        assert_eq!(
            failures[0],
            VerificationFailure::Duplicate {
                number: 2,
                first: placed(2, "Lego", 1, 0),
                second: placed(2, "Lego", 1, 2),
            }
        );
        assert_eq!(
            failures[1].to_string(),
            "order 3: mismatch: expected 1 x \"Slinky\" (session 1), got order 3 = 2 x \"Slinky\""
        );
        assert_eq!(
            failures[2].to_string(),
            "order 5: lost: expected 1 x \"Tux\" (session 0), got 404 (no such order)"
        );
    }

    #[test]
    fn a_duplicate_with_different_contents_also_shows_which_copy_is_wrong() {
        let orders = [placed(4, "Tux", 1, 0), placed(4, "Lego", 3, 1)];
        let answers = HashMap::from([(4, found(4, "Tux", 1))]);
        let kinds: Vec<&str> = verify(&orders, &answers).iter().map(|f| f.kind()).collect();
        assert_eq!(kinds, ["duplicate", "mismatch"]);
    }

    #[test]
    fn an_answer_under_another_number_is_a_mismatch() {
        let orders = [placed(1, "Tux", 1, 0)];
        let answers = HashMap::from([(1, found(9, "Tux", 1))]);
        assert_eq!(verify(&orders, &answers).len(), 1);
    }

    #[test]
    fn each_number_is_looked_up_once() {
        let orders = [
            placed(3, "a", 1, 0),
            placed(1, "b", 1, 0),
            placed(3, "c", 1, 1),
        ];
        assert_eq!(numbers_to_look_up(&orders), [1, 3]);
    }
}
