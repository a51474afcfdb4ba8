//! Property tests of the pure rules: a generated log whose clock crosses the retention many
//! times, with request ids reused across it, is applied
//!
//! - by a model of storage (`Stored`) that forgets in bounded steps at the end of every
//!   `apply` call, the way `state_machine` does, cut into calls anyhow, and sometimes rebuilt
//!   from a snapshot of itself in the middle (a follower that installs one);
//! - by a reference (`Everything`) that knows nothing of storage: it keeps every event forever
//!   and answers from the definition (remembered = made no longer than the retention ago, by the
//!   clock of the entry being applied).
//!
//! Every answer, the counters and the final remembered state must agree, whatever the cuts.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;

use super::*;

pub(crate) const RETENTION_MS: u64 = 1_000;

fn rules() -> Rules {
    Rules {
        retention: Duration::from_millis(RETENTION_MS),
    }
}

/// One operation of a generated entry.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Order {
        key: u8,
        attempt: u32,
        quantity: u32,
    },
    Abandon {
        key: u8,
        attempt: u32,
    },
}

/// One generated entry: how far the leader's clock moved (it may also go back a little: a
/// new leader whose clock is behind), and what it carries.
#[derive(Debug, Clone)]
pub(crate) struct GenEntry {
    pub stamp_step: i64,
    pub ops: Vec<Op>,
}

pub(crate) fn key_name(key: u8) -> String {
    format!("k{key}")
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..5, 0u32..3, 1u32..3).prop_map(|(key, attempt, quantity)| Op::Order { key, attempt, quantity }),
        1 => (0u8..5, 0u32..3).prop_map(|(key, attempt)| Op::Abandon { key, attempt }),
    ]
}

pub(crate) fn gen_entry() -> impl Strategy<Value = GenEntry> {
    (
        prop_oneof![3 => 0i64..50, 2 => 200i64..700, 1 => -100i64..0],
        proptest::collection::vec(op(), 0..4),
    )
        .prop_map(|(stamp_step, mut ops)| {
            // A log entry carries its orders, then its abandonments.
            ops.sort_by_key(|op| matches!(op, Op::Abandon { .. }));
            GenEntry { stamp_step, ops }
        })
}

/// The leader timestamps of a generated log.
pub(crate) fn stamps(log: &[GenEntry]) -> Vec<u64> {
    let mut stamp: i64 = 10_000;
    log.iter()
        .map(|e| {
            stamp = (stamp + e.stamp_step).max(0);
            stamp as u64
        })
        .collect()
}

impl Op {
    /// The order or abandonment this operation proposes.
    pub(crate) fn proposal(ops: &[Op]) -> (Vec<NewOrder>, Vec<ReservationId>) {
        let mut orders = Vec::new();
        let mut abandons = Vec::new();
        for op in ops {
            match op {
                Op::Order {
                    key,
                    attempt,
                    quantity,
                } => orders.push(NewOrder {
                    request_id: key_name(*key),
                    attempt: *attempt,
                    name: "Tux".into(),
                    quantity: *quantity,
                }),
                Op::Abandon { key, attempt } => abandons.push(ReservationId {
                    request_id: key_name(*key),
                    attempt: *attempt,
                }),
            }
        }
        (orders, abandons)
    }
}

/// An answer to one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Order(OrderOutcome),
    Abandon(Verdict),
}

/// The reference: every event kept forever, answers from the definition.
#[derive(Default)]
pub(crate) struct Everything {
    pub clock: u64,
    pub next_number: u64,
    /// (request id, attempt, quantity, placed at) of every order, by number.
    orders: Vec<(String, u32, u32, u64)>,
    /// (request id, through, stamped at) of every recorded abandonment.
    abandons: Vec<(String, u32, u64)>,
}

impl Everything {
    fn remembered(&self, stamp: u64) -> bool {
        stamp >= self.clock.saturating_sub(RETENTION_MS)
    }

    pub fn live_order(&self, key: &str) -> Option<(u64, u32, u32)> {
        self.orders
            .iter()
            .enumerate()
            .rev()
            .find(|(_, (id, _, _, at))| id == key && self.remembered(*at))
            .map(|(n, (_, attempt, quantity, _))| (n as u64, *attempt, *quantity))
    }

    pub fn abandoned_through(&self, key: &str) -> Option<u32> {
        self.abandons
            .iter()
            .filter(|(id, _, at)| id == key && self.remembered(*at))
            .map(|(_, through, _)| *through)
            .max()
    }

    pub fn apply(&mut self, stamp: u64, ops: &[Op]) -> Vec<Answer> {
        self.clock = self.clock.max(stamp);
        ops.iter()
            .map(|op| match op {
                Op::Order {
                    key,
                    attempt,
                    quantity,
                } => {
                    let key = key_name(*key);
                    if let Some((number, _, q)) = self.live_order(&key) {
                        return Answer::Order(if q == *quantity {
                            OrderOutcome::Duplicate(number)
                        } else {
                            OrderOutcome::Conflict(number)
                        });
                    }
                    if self.abandoned_through(&key).is_some_and(|t| t >= *attempt) {
                        return Answer::Order(OrderOutcome::Abandoned);
                    }
                    self.orders.push((key, *attempt, *quantity, self.clock));
                    self.next_number += 1;
                    Answer::Order(OrderOutcome::Placed(self.next_number - 1))
                }
                Op::Abandon { key, attempt } => {
                    let key = key_name(*key);
                    if let Some((_, holder, _)) = self.live_order(&key) {
                        return Answer::Abandon(if holder == *attempt {
                            Verdict::Confirm
                        } else {
                            Verdict::Release
                        });
                    }
                    if self.abandoned_through(&key).is_none_or(|t| t < *attempt) {
                        self.abandons.push((key, *attempt, self.clock));
                    }
                    Answer::Abandon(Verdict::Release)
                }
            })
            .collect()
    }
}

/// A model of what `state_machine` keeps: the request index, one abandonment record per
/// request id, and the cursors of its bounded forgetting.
#[derive(Clone, Default)]
struct Stored {
    counters: Counters,
    orders: Vec<StoredOrder>,
    index: HashMap<String, u64>,
    abandoned: HashMap<String, u64>,
    abandon_log: BTreeMap<u64, AbandonRecord>,
    requests_forgotten_below: u64,
    abandons_forgotten_below: u64,
}

impl Stored {
    fn known(&self, key: &str) -> Known {
        Known {
            placed: self
                .index
                .get(key)
                .map(|n| self.orders[*n as usize].clone()),
            abandoned: self
                .abandoned
                .get(key)
                .and_then(|seq| self.abandon_log.get(seq).cloned()),
        }
    }

    fn apply_call(&mut self, entries: &[(u64, &[Op])], step: usize) -> Vec<Answer> {
        let rules = rules();
        let mut answers = Vec::new();
        for (stamp, ops) in entries {
            self.counters.tick(*stamp);
            for op in *ops {
                let (answer, write) = match op {
                    Op::Order {
                        key,
                        attempt,
                        quantity,
                    } => {
                        let order = NewOrder {
                            request_id: key_name(*key),
                            attempt: *attempt,
                            name: "Tux".into(),
                            quantity: *quantity,
                        };
                        let known = self.known(&order.request_id);
                        let (outcome, write) = rules.order(&mut self.counters, known, &order);
                        (Answer::Order(outcome), write)
                    }
                    Op::Abandon { key, attempt } => {
                        let id = ReservationId {
                            request_id: key_name(*key),
                            attempt: *attempt,
                        };
                        let known = self.known(&id.request_id);
                        let (verdict, write) = rules.abandon(&mut self.counters, known, &id);
                        (Answer::Abandon(verdict), write)
                    }
                };
                match write {
                    Some(Write::Order(order)) => {
                        self.index.insert(order.request_id.clone(), order.number);
                        self.orders.push(order);
                    }
                    Some(Write::Abandon { record, replaces }) => {
                        if let Some(old) = replaces {
                            self.abandon_log.remove(&old);
                        }
                        self.abandoned.insert(record.request_id.clone(), record.seq);
                        self.abandon_log.insert(record.seq, record);
                    }
                    None => {}
                }
                answers.push(answer);
            }
        }
        self.forget(step);
        answers
    }

    /// Bounded forgetting at the end of a call, as `state_machine` does it.
    fn forget(&mut self, step: usize) {
        let cutoff = rules().cutoff(self.counters.clock_ms);
        for _ in 0..step {
            let Some(order) = self.orders.get(self.requests_forgotten_below as usize) else {
                break;
            };
            if order.placed_ms >= cutoff {
                break;
            }
            if self.index.get(&order.request_id) == Some(&order.number) {
                self.index.remove(&order.request_id);
            }
            self.requests_forgotten_below += 1;
        }
        for _ in 0..step {
            let seq = self.abandons_forgotten_below;
            if seq >= self.counters.abandon_seq {
                break;
            }
            if let Some(record) = self.abandon_log.get(&seq) {
                if record.stamp_ms >= cutoff {
                    break;
                }
                if self.abandoned.get(&record.request_id) == Some(&seq) {
                    self.abandoned.remove(&record.request_id);
                }
                self.abandon_log.remove(&seq);
            }
            self.abandons_forgotten_below += 1;
        }
    }

    /// What a follower holds after installing a snapshot of this state: the orders, the index
    /// rebuilt from the orders not yet forgotten (a later order of a request id wins), the
    /// abandonment records.
    fn through_snapshot(&self) -> Stored {
        let mut index = HashMap::new();
        for order in &self.orders[self.requests_forgotten_below as usize..] {
            index.insert(order.request_id.clone(), order.number);
        }
        let abandoned = self
            .abandon_log
            .values()
            .map(|r| (r.request_id.clone(), r.seq))
            .collect();
        Stored {
            counters: self.counters.clone(),
            orders: self.orders.clone(),
            index,
            abandoned,
            abandon_log: self.abandon_log.clone(),
            requests_forgotten_below: self.requests_forgotten_below,
            abandons_forgotten_below: self.abandons_forgotten_below,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    /// Any log, cut into `apply` calls anyhow, forgotten in steps of any size, with a snapshot
    /// install anywhere: the same answers, counters and remembered state as the reference.
    #[test]
    fn answers_are_a_function_of_the_log_alone(
        log in proptest::collection::vec(gen_entry(), 1..40),
        cuts in proptest::collection::vec(1usize..6, 1..20),
        step in prop_oneof![1usize..3, Just(1024usize)],
        snapshot_after in proptest::option::of(0usize..20),
    ) {
        let stamps = stamps(&log);
        let mut reference = Everything::default();
        let mut expected = Vec::new();
        for (entry, stamp) in log.iter().zip(&stamps) {
            expected.extend(reference.apply(*stamp, &entry.ops));
        }

        let mut stored = Stored::default();
        let mut answers = Vec::new();
        let entries: Vec<(u64, &[Op])> =
            log.iter().zip(&stamps).map(|(e, s)| (*s, e.ops.as_slice())).collect();
        let mut rest = &entries[..];
        for (call, cut) in cuts.iter().cycle().enumerate() {
            if rest.is_empty() {
                break;
            }
            let (now, later) = rest.split_at((*cut).min(rest.len()));
            rest = later;
            answers.extend(stored.apply_call(now, step));
            if snapshot_after == Some(call) {
                stored = stored.through_snapshot();
            }
        }

        prop_assert_eq!(&answers, &expected);
        prop_assert_eq!(stored.counters.next_number, reference.next_number);
        prop_assert_eq!(stored.counters.clock_ms, reference.clock);
        let cutoff = rules().cutoff(stored.counters.clock_ms);
        for key in 0u8..5 {
            let name = key_name(key);
            let known = stored.known(&name).within(cutoff);
            prop_assert_eq!(known.placed.map(|o| o.number), reference.live_order(&name).map(|o| o.0));
            prop_assert_eq!(known.abandoned.map(|r| r.through), reference.abandoned_through(&name));
        }
    }
}

#[test]
fn a_retry_after_the_retention_is_a_new_order_and_within_it_a_duplicate() {
    let rules = rules();
    let mut counters = Counters::default();
    let order = NewOrder {
        request_id: "k".into(),
        attempt: 0,
        name: "Tux".into(),
        quantity: 1,
    };
    counters.tick(5_000);
    let (first, write) = rules.order(&mut counters, Known::default(), &order);
    let Some(Write::Order(stored)) = write else {
        panic!("a first order is written");
    };
    assert_eq!(first, OrderOutcome::Placed(0));
    let known = Known {
        placed: Some(stored),
        abandoned: None,
    };
    counters.tick(5_000 + RETENTION_MS);
    let (within, _) = rules.order(&mut counters, known.clone(), &order);
    assert_eq!(
        within,
        OrderOutcome::Duplicate(0),
        "at exactly the retention"
    );
    counters.tick(5_001 + RETENTION_MS);
    let (after, _) = rules.order(&mut counters, known, &order);
    assert_eq!(after, OrderOutcome::Placed(1), "a millisecond later");
}
