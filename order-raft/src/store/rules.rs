//! The state machine's rules as pure functions: what one order or one abandonment decides,
//! given what is remembered of its request id and the counters the log has advanced so far.
//! No RocksDB here: [`super::state_machine`] looks the request id up, calls these, and writes
//! the [`Write`] they return. The property tests at the bottom drive them with tens of
//! thousands of generated logs against a model that remembers everything.
//!
//! **Retention is logical.** A request id is remembered while the order (or abandonment) that
//! made it known is younger than the retention *by the clock of the entry being applied*
//! ([`Rules::cutoff`]). Storage may still hold older records (it forgets in bounded steps, at
//! `apply` boundaries that differ between replicas), so every lookup goes through
//! [`Known::within`]: physical forgetting is garbage collection and never changes an answer.
//! That makes each answer a function of the log alone, however the log was cut into `apply`
//! calls or reached a replica (entries or a snapshot).

use std::time::Duration;

use api::catalog::ReservationId;
use serde::{Deserialize, Serialize};

use super::records::{AbandonRecord, StoredOrder};
use crate::types::{NewOrder, OrderOutcome, Verdict};

/// SHA-256 chain over all orders in number order: `d(n+1) = SHA256(d(n) ‖ order n)`, starting
/// from 32 zero bytes. Covers exactly what `GET /orders/{n}` shows (number, name, quantity), so
/// anyone can recompute it.
pub fn chain_digest(previous: &[u8; 32], number: u64, name: &str, quantity: u32) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(number.to_be_bytes());
    hasher.update((name.len() as u64).to_be_bytes());
    hasher.update(name.as_bytes());
    hasher.update(quantity.to_be_bytes());
    hasher.finalize().into()
}

/// The counters the log advances, entry by entry: functions of the log alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Number the next new order gets; also the number of orders.
    pub next_number: u64,
    /// [`chain_digest`] over every order so far.
    pub digest: [u8; 32],
    /// The latest leader timestamp applied (Unix ms); never moves backwards.
    pub clock_ms: u64,
    /// Sequence number the next abandonment record gets.
    pub abandon_seq: u64,
}

impl Counters {
    /// Moves the clock to an entry's leader timestamp (a leader whose clock is behind an
    /// earlier one's cannot move it back).
    pub fn tick(&mut self, stamp_ms: u64) {
        self.clock_ms = self.clock_ms.max(stamp_ms);
    }
}

/// What storage holds for one request id. It may include records older than the retention
/// that were not collected yet; [`Known::within`] drops them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    /// The latest order placed with this request id.
    pub placed: Option<StoredOrder>,
    /// Its latest abandonment record (attempts up to `through` were abandoned).
    pub abandoned: Option<AbandonRecord>,
}

impl Known {
    /// What is still remembered at `cutoff`: records made at or after it.
    pub fn within(self, cutoff: u64) -> Known {
        Known {
            placed: self.placed.filter(|order| order.placed_ms >= cutoff),
            abandoned: self.abandoned.filter(|record| record.stamp_ms >= cutoff),
        }
    }

    /// The attempt a new try at this request id reserves as.
    pub fn next_attempt(&self) -> u32 {
        self.abandoned
            .as_ref()
            .map_or(0, |record| record.through.saturating_add(1))
    }
}

/// What storage must write for a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// A new order, and its request id's index entry.
    Order(StoredOrder),
    /// A new abandonment record for its request id. `replaces`: the sequence number of the
    /// record storage still holds for that id (remembered or not), which it deletes, so that
    /// storage holds at most one record per request id.
    Abandon {
        record: AbandonRecord,
        replaces: Option<u64>,
    },
}

/// The rules, with the one setting they depend on.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// How long a request id is remembered after the entry that made it known.
    pub retention: Duration,
}

impl Rules {
    /// Records made before this are forgotten, at clock `clock_ms`.
    pub fn cutoff(&self, clock_ms: u64) -> u64 {
        clock_ms.saturating_sub(self.retention.as_millis() as u64)
    }

    /// Applies one order: places it unless its request id already has a remembered order (a
    /// duplicate, or a conflict if toy or quantity differ) or the log abandoned this attempt
    /// first.
    pub fn order(
        &self,
        counters: &mut Counters,
        known: Known,
        order: &NewOrder,
    ) -> (OrderOutcome, Option<Write>) {
        let known = known.within(self.cutoff(counters.clock_ms));
        if let Some(earlier) = known.placed {
            let same = earlier.name == order.name && earlier.quantity == order.quantity;
            let outcome = if same {
                OrderOutcome::Duplicate(earlier.number)
            } else {
                OrderOutcome::Conflict(earlier.number)
            };
            return (outcome, None);
        }
        if known
            .abandoned
            .is_some_and(|record| record.through >= order.attempt)
        {
            return (OrderOutcome::Abandoned, None);
        }
        let stored = StoredOrder {
            number: counters.next_number,
            request_id: order.request_id.clone(),
            attempt: order.attempt,
            name: order.name.clone(),
            quantity: order.quantity,
            placed_ms: counters.clock_ms,
        };
        counters.digest = chain_digest(
            &counters.digest,
            stored.number,
            &stored.name,
            stored.quantity,
        );
        counters.next_number += 1;
        (
            OrderOutcome::Placed(stored.number),
            Some(Write::Order(stored)),
        )
    }

    /// Applies one abandonment: a confirmation if the reservation's order came first, a
    /// release otherwise (recorded, so that the order can never commit later).
    pub fn abandon(
        &self,
        counters: &mut Counters,
        known: Known,
        id: &ReservationId,
    ) -> (Verdict, Option<Write>) {
        let stored_seq = known.abandoned.as_ref().map(|record| record.seq);
        let known = known.within(self.cutoff(counters.clock_ms));
        if let Some(order) = known.placed {
            // The request id's order holds this reservation, or another one (then this one is
            // unused).
            let verdict = if order.attempt == id.attempt {
                Verdict::Confirm
            } else {
                Verdict::Release
            };
            return (verdict, None);
        }
        if known
            .abandoned
            .is_some_and(|record| record.through >= id.attempt)
        {
            return (Verdict::Release, None);
        }
        let record = AbandonRecord {
            seq: counters.abandon_seq,
            request_id: id.request_id.clone(),
            through: id.attempt,
            stamp_ms: counters.clock_ms,
        };
        counters.abandon_seq += 1;
        let write = Write::Abandon {
            record,
            replaces: stored_seq,
        };
        (Verdict::Release, Some(write))
    }
}

#[cfg(test)]
pub(crate) mod tests;
