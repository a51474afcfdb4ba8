//! Builders for hand-made histories and states (tests only).

use std::collections::HashMap;

use crate::history::{Event, Nemesis, Order, OrderRecord, Outcome, Phase, Query, Read, Reuse};
use crate::state::{
    CatalogState, FinalState, Replica, Reservation, ReservationStatus, StoredOrder, ToyStock,
};

/// The reason a refusal of `status` carries in these tests.
fn reason_of(status: u16) -> &'static str {
    match status {
        400 => "out_of_stock",
        404 => "unknown_toy",
        409 => "request_id_expired",
        _ => "other",
    }
}

pub fn order(
    session: u64,
    span: (f64, f64),
    outcome: Outcome,
    key: &str,
    toy: &str,
    number: Option<u64>,
) -> Event {
    Event::Order(Order {
        session,
        invoke: span.0,
        complete: span.1,
        outcome,
        key: key.into(),
        toy: toy.into(),
        quantity: 1,
        number,
        stock_version: None,
        error: (outcome != Outcome::Ok).then(|| "refused".to_string()),
        status: (outcome == Outcome::Fail).then_some(400),
        reason: (outcome == Outcome::Fail).then(|| reason_of(400).to_string()),
        reuse: None,
    })
}

/// An `ok` order of one Tux whose reservation produced stock version `version`.
pub fn versioned_order(
    session: u64,
    span: (f64, f64),
    key: &str,
    number: u64,
    version: u64,
) -> Event {
    let mut event = ok_order(session, span, key, number);
    if let Event::Order(order) = &mut event {
        order.stock_version = Some(version);
    }
    event
}

/// A deliberate re-send of `key` (last answered as #`last`) ending `placed_s` seconds
/// after its order may have been placed, `answered_s` seconds after that answer, with a
/// 20 s retention; `outcome` / `number` as the store answered, `refusal` the status and
/// reason of a refusal.
#[allow(clippy::too_many_arguments)]
pub fn reuse(
    span: (f64, f64),
    key: &str,
    last: u64,
    placed_s: f64,
    answered_s: f64,
    outcome: Outcome,
    number: Option<u64>,
    refusal: Option<(u16, &str)>,
) -> Event {
    Event::Order(Order {
        session: 9,
        invoke: span.0,
        complete: span.1,
        outcome,
        key: key.into(),
        toy: "Tux".into(),
        quantity: 1,
        number,
        stock_version: None,
        error: match (outcome, refusal) {
            (_, Some((status, reason))) => Some(format!("refused {status} {reason}")),
            (Outcome::Ok, None) => None,
            _ => Some("timeout".to_string()),
        },
        status: refusal.map(|(status, _)| status),
        reason: refusal.map(|(_, reason)| reason.to_string()),
        reuse: Some(Reuse {
            number: last,
            retention_ms: 20_000.0,
            placed_ms: placed_s * 1000.0,
            answered_ms: answered_s * 1000.0,
        }),
    })
}

pub fn ok_order(session: u64, span: (f64, f64), key: &str, number: u64) -> Event {
    order(session, span, Outcome::Ok, key, "Tux", Some(number))
}

pub fn read(session: u64, span: (f64, f64), number: u64, found: Option<&str>) -> Event {
    Event::Read(Read {
        session,
        invoke: span.0,
        complete: span.1,
        outcome: Outcome::Ok,
        number,
        found: Some(found.map(|name| OrderRecord {
            name: name.into(),
            quantity: 1,
            number: Some(number),
        })),
        error: None,
    })
}

/// A read of #`number` that got no answer.
pub fn unanswered_read(session: u64, span: (f64, f64), number: u64) -> Event {
    Event::Read(Read {
        session,
        invoke: span.0,
        complete: span.1,
        outcome: Outcome::Unknown,
        number,
        found: None,
        error: Some("timeout".into()),
    })
}

pub fn query(session: u64, span: (f64, f64), toy: &str, version: u64) -> Event {
    Event::Query(Query {
        session,
        invoke: span.0,
        complete: span.1,
        outcome: Outcome::Ok,
        toy: toy.into(),
        quantity: Some(100),
        version: Some(version),
        error: None,
    })
}

pub fn nemesis(span: (f64, f64), fault: &str, phase: Phase) -> Event {
    Event::Nemesis(Nemesis {
        invoke: span.0,
        complete: span.1,
        fault: fault.into(),
        target: Some("node-1".into()),
        phase,
    })
}

pub fn stored(number: u64, key: &str, toy: &str) -> StoredOrder {
    StoredOrder {
        number,
        request_id: Some(key.into()),
        name: toy.into(),
        quantity: 1,
        attempt: None,
    }
}

/// Three identical replicas holding `orders`, and a catalog whose Tux and Lego stock adds up
/// with them (100 initial each, no restock, nothing pending) and that holds one confirmed
/// reservation per order. An order without an attempt gets the next one of its key (0 for
/// the first).
pub fn state(orders: &[StoredOrder]) -> FinalState {
    let mut attempts: HashMap<String, u32> = HashMap::new();
    let orders: Vec<StoredOrder> = orders
        .iter()
        .map(|order| {
            let mut order = order.clone();
            if let Some(key) = &order.request_id {
                let next = attempts.entry(key.clone()).or_default();
                let attempt = *order.attempt.get_or_insert(*next);
                *next = attempt + 1;
            }
            order
        })
        .collect();
    let sold = |toy: &str| {
        orders
            .iter()
            .filter(|o| o.name == toy)
            .map(|o| i64::from(o.quantity))
            .sum::<i64>()
    };
    let reservations = orders
        .iter()
        .filter_map(|order| {
            Some(Reservation {
                request_id: order.request_id.clone()?,
                attempt: order.attempt?,
                name: order.name.clone(),
                quantity: order.quantity,
                status: ReservationStatus::Confirmed,
            })
        })
        .collect();
    FinalState {
        replicas: (1..=3)
            .map(|id| Replica {
                id,
                orders: orders.clone(),
            })
            .collect(),
        catalog: CatalogState {
            toys: ["Tux", "Lego"]
                .into_iter()
                .map(|toy| ToyStock {
                    name: toy.into(),
                    initial: 100,
                    restocked: 0,
                    quantity: 100 - sold(toy),
                    pending: 0,
                })
                .collect(),
            reservations: Some(reservations),
            forgotten_through_ms: None,
        },
    }
}
