//! The checks: what a violation is, the indexes every check shares, and running them all.
//!
//! Each submodule holds one group of checks; each check is a function from the shared
//! `Ctx` to the violations it found, so the checks stay independent of one another.

mod answers;
mod cache;
mod orders;
mod reads;
mod replicas;
mod reservations;
mod reuse;
mod stock;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::history::{Event, Outcome};
use crate::state::{FinalState, StoredOrder};

/// What kind of promise a violation breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ViolationKind {
    /// The final state lists no replica at all, so nothing can be proven.
    NoReplicas,
    /// Two replicas hold different orders.
    ReplicasDiffer,
    /// Two replicas hold different orders (request id, attempt, toy or quantity) under one
    /// number.
    ReplicasDisagree,
    /// A replica's numbers skip some value below its highest.
    NumberGap,
    /// One number held twice by a replica, or acknowledged to two different keys.
    DuplicateNumber,
    /// One request id held twice by a replica, or acknowledged with two numbers.
    DuplicateRequestId,
    /// An acknowledged order is missing from a replica.
    LostOrder,
    /// A replica holds something else at an acknowledged order's number.
    ChangedOrder,
    /// A refused order exists.
    FailedOrderExists,
    /// An order acknowledged before another was placed got a number not below it.
    RealTimeOrder,
    /// A read returned a record that is not the order at that number.
    ReadWrongRecord,
    /// The reads of one order number admit no linearization (a stale read).
    NonLinearizableRead,
    /// A query invoked after an order was acknowledged showed the toy's stock before it.
    ReadYourWrites,
    /// Two answers for one toy at one stock version showed different quantities.
    VersionConflict,
    /// An answer that breaks the protocol: a product answer without its version (`ETag`).
    ProtocolError,
    /// A reservation and the orders do not match one to one (a confirmed reservation without
    /// its order, an order whose reservation was released or is missing, ...).
    ReservationMismatch,
    /// initial + restocked − sold − pending ≠ quantity.
    StockMismatch,
    /// A toy's stock is below zero.
    NegativeStock,
    /// Reservations still held after the store settled.
    UnsettledReservations,
    /// A replica holds an order for a toy the catalog does not know.
    UnknownToy,
    /// A key re-sent while the store had to remember it was not answered with its order.
    ReuseNotDeduplicated,
    /// A key re-sent after its window got an answer no store may give (an older number, or a
    /// refusal whose reason is not `request_id_expired` or `out_of_stock`).
    ReuseWrongAnswer,
    /// A refusal no correct store gives: a key refused as "used for a different order"
    /// although it was only ever sent with one toy and quantity.
    WrongRefusal,
}

impl ViolationKind {
    /// The name used in reports (`lost-order`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationKind::NoReplicas => "no-replicas",
            ViolationKind::ReplicasDiffer => "replicas-differ",
            ViolationKind::ReplicasDisagree => "replicas-disagree",
            ViolationKind::NumberGap => "number-gap",
            ViolationKind::DuplicateNumber => "duplicate-number",
            ViolationKind::DuplicateRequestId => "duplicate-request-id",
            ViolationKind::LostOrder => "lost-order",
            ViolationKind::ChangedOrder => "changed-order",
            ViolationKind::FailedOrderExists => "failed-order-exists",
            ViolationKind::RealTimeOrder => "real-time-order",
            ViolationKind::ReadWrongRecord => "read-wrong-record",
            ViolationKind::NonLinearizableRead => "non-linearizable-read",
            ViolationKind::ReadYourWrites => "read-your-writes",
            ViolationKind::VersionConflict => "version-conflict",
            ViolationKind::ProtocolError => "protocol-error",
            ViolationKind::ReservationMismatch => "reservation-mismatch",
            ViolationKind::StockMismatch => "stock-mismatch",
            ViolationKind::NegativeStock => "negative-stock",
            ViolationKind::UnsettledReservations => "unsettled-reservations",
            ViolationKind::UnknownToy => "unknown-toy",
            ViolationKind::ReuseNotDeduplicated => "reuse-not-deduplicated",
            ViolationKind::ReuseWrongAnswer => "reuse-wrong-answer",
            ViolationKind::WrongRefusal => "wrong-refusal",
        }
    }
}

impl fmt::Display for ViolationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One broken promise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub kind: ViolationKind,
    /// One line saying what went wrong.
    pub message: String,
    /// The operations involved: indices into the history (0-based, in file order, blank lines
    /// not counted).
    pub ops: Vec<usize>,
}

impl Violation {
    fn new(kind: ViolationKind, message: String, mut ops: Vec<usize>) -> Violation {
        ops.sort_unstable();
        ops.dedup();
        Violation { kind, message, ops }
    }
}

/// A check as listed in the report.
#[derive(Clone, Copy, Debug)]
pub struct CheckInfo {
    pub name: &'static str,
    pub description: &'static str,
    /// Runs the check.
    run: fn(&Ctx<'_>) -> Vec<Violation>,
}

/// Every check, in the order they run and are reported.
pub const CHECKS: &[CheckInfo] = &[
    CheckInfo {
        name: "replicas-identical",
        description: "every replica holds the same list of orders",
        run: replicas::identical,
    },
    CheckInfo {
        name: "replicas-agree",
        description: "every replica holding a number holds the same request id, attempt, toy and quantity",
        run: replicas::agree,
    },
    CheckInfo {
        name: "numbers-dense",
        description: "each replica's order numbers are exactly 0..n-1",
        run: replicas::dense,
    },
    CheckInfo {
        name: "unique-request-ids",
        description: "one order per request id on each replica (more only after re-sends past the dedup retention)",
        run: replicas::unique_request_ids,
    },
    CheckInfo {
        name: "acked-orders-durable",
        description: "every acknowledged order is on every replica, unchanged; no number acknowledged twice",
        run: orders::acked_durable,
    },
    CheckInfo {
        name: "failed-orders-absent",
        description: "no refused order exists",
        run: orders::failed_absent,
    },
    CheckInfo {
        name: "real-time-order",
        description: "an order acknowledged before another was placed has a lower number",
        run: orders::real_time,
    },
    CheckInfo {
        name: "linearizable-reads",
        description: "order reads are linearizable (write-once register per number)",
        run: reads::linearizable,
    },
    CheckInfo {
        name: "read-your-writes",
        description: "a query invoked after an order's answer, from any session, shows at least the stock version that order produced",
        run: cache::read_your_writes,
    },
    CheckInfo {
        name: "query-answers",
        description: "every product answer carries its version; one toy's version always shows one quantity",
        run: answers::query_answers,
    },
    CheckInfo {
        name: "reused-keys",
        description: "a key re-sent within the dedup retention gets its order; after it, that order, a new one or a refusal",
        run: reuse::reused_keys,
    },
    CheckInfo {
        name: "refusals",
        description: "no key sent with one toy and quantity is refused as used for a different order",
        run: reuse::refusals,
    },
    CheckInfo {
        name: "stock-conservation",
        description: "initial + restocked - sold - pending == quantity >= 0, nothing pending",
        run: stock::conservation,
    },
    CheckInfo {
        name: "reservations-match",
        description: "each confirmed reservation has exactly one order with its request id and attempt; released and refused ones none",
        run: reservations::matched,
    },
];

/// A replica's orders, indexed.
pub(crate) struct ReplicaView<'a> {
    pub id: u64,
    /// Sorted by number (stable, so duplicates keep file order).
    pub orders: Vec<&'a StoredOrder>,
    /// The first order held at each number.
    pub by_number: HashMap<u64, &'a StoredOrder>,
    /// Every number held for each request id.
    pub by_key: HashMap<&'a str, Vec<u64>>,
}

/// One order as the history saw it, across every operation that carried its key.
pub(crate) struct KeyInfo {
    /// Earliest invoke of any operation with this key: the order cannot exist before.
    pub invoke: f64,
    pub first_op: usize,
    /// Earliest completion of an `ok` operation with this key: it exists from then on.
    pub ok_complete: Option<f64>,
    pub first_ok: Option<usize>,
    /// The number the first `ok` answer gave.
    pub ack_number: Option<u64>,
    pub ops: Vec<usize>,
    /// Every number `ok` answers gave this key, in the order first acknowledged. More than one
    /// only after re-sends past the dedup retention (or in a broken store).
    pub acks: Vec<Ack>,
    /// How many orders the store may hold for this key: its first, plus one per re-send
    /// outside the dedup window that may have placed a new order (answered with a new
    /// number, or no answer).
    pub allowed_orders: usize,
}

/// One number acknowledged to a key, and when its order may have been placed.
pub(crate) struct Ack {
    pub number: u64,
    /// It cannot have been placed before this: the key's first invoke for its first number;
    /// for a later one, the first invoke after the key's previous `ok` answer.
    pub invoke: f64,
    /// The earliest `ok` completion with this number: it exists from then on.
    pub complete: f64,
    /// The first `ok` operation with this number.
    pub op: usize,
}

/// The indexes every check shares, built once.
pub(crate) struct Ctx<'a> {
    pub history: &'a [Event],
    pub state: &'a FinalState,
    /// The earliest invoke in the history, for relative times in messages.
    pub t0: f64,
    pub replicas: Vec<ReplicaView<'a>>,
    /// The replica the history is compared against: the one holding the most orders
    /// (the first such). `None` when there is no replica.
    pub reference: Option<usize>,
    pub keys: HashMap<&'a str, KeyInfo>,
    /// Re-sends (orders with `reuse`) whose `ok` answer placed a new order during the
    /// operation itself (a new number, and no unanswered operation of the key since its last
    /// answer that could have placed it earlier): they changed the stock like a first order.
    pub reuse_placed: HashSet<usize>,
}

impl<'a> Ctx<'a> {
    pub fn new(history: &'a [Event], state: &'a FinalState) -> Ctx<'a> {
        let t0 = history
            .iter()
            .map(Event::invoke)
            .fold(f64::INFINITY, f64::min);
        let t0 = if t0.is_finite() { t0 } else { 0.0 };
        let replicas: Vec<ReplicaView<'a>> = state
            .replicas
            .iter()
            .map(|replica| {
                let mut orders: Vec<&StoredOrder> = replica.orders.iter().collect();
                orders.sort_by_key(|order| order.number);
                let mut by_number = HashMap::new();
                let mut by_key: HashMap<&str, Vec<u64>> = HashMap::new();
                for order in &orders {
                    by_number.entry(order.number).or_insert(*order);
                    if let Some(key) = &order.request_id {
                        by_key.entry(key.as_str()).or_default().push(order.number);
                    }
                }
                ReplicaView {
                    id: replica.id,
                    orders,
                    by_number,
                    by_key,
                }
            })
            .collect();
        let reference = (0..replicas.len())
            .rev()
            .max_by_key(|&i| replicas[i].orders.len());
        let mut keys: HashMap<&str, KeyInfo> = HashMap::new();
        for (i, event) in history.iter().enumerate() {
            let Event::Order(order) = event else {
                continue;
            };
            let info = keys.entry(order.key.as_str()).or_insert(KeyInfo {
                invoke: order.invoke,
                first_op: i,
                ok_complete: None,
                first_ok: None,
                ack_number: None,
                ops: Vec::new(),
                acks: Vec::new(),
                allowed_orders: 1,
            });
            info.ops.push(i);
            if order.invoke < info.invoke {
                info.invoke = order.invoke;
                info.first_op = i;
            }
            if order.outcome == Outcome::Ok {
                if info.first_ok.is_none() {
                    info.first_ok = Some(i);
                    info.ack_number = order.number;
                }
                if info.ok_complete.is_none_or(|t| order.complete < t) {
                    info.ok_complete = Some(order.complete);
                }
            }
        }
        let mut reuse_placed = HashSet::new();
        for info in keys.values_mut() {
            reuse_placed.extend(walk_key(history, info));
        }
        Ctx {
            history,
            state,
            t0,
            replicas,
            reference,
            keys,
            reuse_placed,
        }
    }

    /// When the order `number` of `key` may have been placed: from its key's earliest possible
    /// invoke to its first acknowledgement (never, if none; any time, if the key is unknown).
    pub fn write_span(&self, key: Option<&str>, number: u64) -> (f64, f64) {
        match key.and_then(|k| self.keys.get(k)) {
            None => (f64::NEG_INFINITY, f64::INFINITY),
            Some(info) => match info.acks.iter().find(|ack| ack.number == number) {
                Some(ack) => (ack.invoke, ack.complete),
                None => (info.invoke, f64::INFINITY),
            },
        }
    }

    /// The reference replica, if any.
    pub fn reference(&self) -> Option<&ReplicaView<'a>> {
        self.reference.map(|i| &self.replicas[i])
    }

    /// The history operations that carried `key` (none for an unknown or absent key).
    pub fn key_ops(&self, key: Option<&str>) -> Vec<usize> {
        key.and_then(|k| self.keys.get(k))
            .map(|info| info.ops.clone())
            .unwrap_or_default()
    }

    /// A time relative to the start of the history, for messages.
    pub fn at(&self, t: f64) -> String {
        if t.is_finite() {
            format!("t={:.3}s", (t - self.t0) / 1000.0)
        } else if t > 0.0 {
            "t=never".to_string()
        } else {
            "t=any".to_string()
        }
    }
}

/// Walks one key's operations in invoke order (a key belongs to one session, which sends it
/// one operation at a time): fills `acks` and `allowed_orders`, and returns the re-sends that
/// placed a new order themselves.
fn walk_key(history: &[Event], info: &mut KeyInfo) -> Vec<usize> {
    let order_at = |i: usize| match &history[i] {
        Event::Order(order) => Some(order),
        _ => None,
    };
    let mut ops = info.ops.clone();
    ops.sort_by(|&a, &b| {
        let (x, y) = (order_at(a).map(|o| o.invoke), order_at(b).map(|o| o.invoke));
        x.partial_cmp(&y)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(&b))
    });
    let mut placed_by_reuse = Vec::new();
    // The invoke of the first operation since the key's last `ok` answer, and how many
    // operations that was: a new number was placed by one of them, not before.
    let mut since_ok: Option<(f64, usize)> = None;
    for i in ops {
        let Some(order) = order_at(i) else { continue };
        let (first, count) = since_ok.unwrap_or((order.invoke, 0));
        since_ok = Some((first.min(order.invoke), count + 1));
        if let Some(reuse) = &order.reuse
            && !reuse.must_dedup()
        {
            let may_place = match (order.outcome, order.number) {
                (Outcome::Unknown, _) => true,
                (Outcome::Ok, Some(number)) => number != reuse.number,
                _ => false,
            };
            if may_place {
                info.allowed_orders += 1;
            }
        }
        if order.outcome != Outcome::Ok {
            continue;
        }
        let Some(number) = order.number else { continue };
        match info.acks.iter_mut().find(|ack| ack.number == number) {
            Some(ack) => ack.complete = ack.complete.min(order.complete),
            None => {
                let invoke = if info.acks.is_empty() {
                    info.invoke
                } else {
                    first
                };
                info.acks.push(Ack {
                    number,
                    invoke,
                    complete: order.complete,
                    op: i,
                });
                if order.reuse.is_some() && count == 0 {
                    placed_by_reuse.push(i);
                }
            }
        }
        since_ok = None;
    }
    placed_by_reuse
}

/// Describes a stored order in messages.
pub(crate) fn describe_stored(order: &StoredOrder) -> String {
    let attempt = order
        .attempt
        .map(|a| format!(" attempt {a}"))
        .unwrap_or_default();
    format!(
        "#{} key {}{attempt} {}×{:?}",
        order.number,
        order.request_id.as_deref().unwrap_or("(none)"),
        order.quantity,
        order.name
    )
}

/// Runs every check; returns each check's violations, in [`CHECKS`] order.
pub(crate) fn run_all(history: &[Event], state: &FinalState) -> BTreeMap<usize, Vec<Violation>> {
    let ctx = Ctx::new(history, state);
    CHECKS
        .iter()
        .enumerate()
        .map(|(i, check)| (i, (check.run)(&ctx)))
        .collect()
}

#[cfg(test)]
pub(crate) mod testkit;
