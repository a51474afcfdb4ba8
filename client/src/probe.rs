//! Order reads taken while the load runs (with `--history`), so the checker's
//! linearizable-reads check sees reads made during faults, not only after them.
//!
//! Every session, on some iterations, reads one `GET /orders/{n}` aimed where a stale or wrong
//! answer would show:
//!
//! - a recently acknowledged number (it must be found, unchanged);
//! - just past the highest acknowledged number (it may not exist yet: a 404 must then be
//!   consistent with every other read of that number, and once a later number is seen, with
//!   dense numbering);
//! - just past the highest number acknowledged when an order got no usable answer (the number
//!   that order would hold if it took effect: found or not, every read must agree).
//!
//! The targets are shared by all sessions, so one session reads what another placed. The
//! reads are sent once, never retried: an answer-less read is recorded as such, and the checker
//! counts, per kind of fault, how many reads met it.

use std::collections::VecDeque;

use parking_lot::Mutex;
use rand::Rng;

/// Probability that a session reads an order on one iteration.
pub const READ_PROB: f64 = 0.3;

/// Acknowledged numbers kept to read back.
const RECENT: usize = 64;

/// Numbers near unknown orders kept to read.
const NEAR_UNKNOWN: usize = 32;

/// How far past a number the reads aim (1..=AHEAD).
const AHEAD: u64 = 3;

#[derive(Debug, Default)]
struct Targets {
    recent: VecDeque<u64>,
    highest: Option<u64>,
    /// For each order without an answer: the first number above what was acknowledged then.
    near_unknown: VecDeque<u64>,
}

/// What the sessions have learnt about which numbers exist; cloned through an `Arc`.
#[derive(Debug, Default)]
pub struct ReadTargets {
    inner: Mutex<Targets>,
}

impl ReadTargets {
    /// An order was acknowledged as #`number`.
    pub fn acknowledged(&self, number: u64) {
        let mut targets = self.inner.lock();
        if targets.recent.len() >= RECENT {
            targets.recent.pop_front();
        }
        targets.recent.push_back(number);
        targets.highest = Some(targets.highest.map_or(number, |h| h.max(number)));
    }

    /// An order got no usable answer: it may hold a number just above the highest known.
    pub fn unknown(&self) {
        let mut targets = self.inner.lock();
        let next = targets.highest.map_or(0, |h| h.saturating_add(1));
        if targets.near_unknown.len() >= NEAR_UNKNOWN {
            targets.near_unknown.pop_front();
        }
        targets.near_unknown.push_back(next);
    }

    /// The number to read next, drawn from `rng` among the kinds of target there are.
    pub fn pick(&self, rng: &mut impl Rng) -> u64 {
        let targets = self.inner.lock();
        let kind = rng.random_range(0..3);
        let offset = rng.random_range(0..AHEAD);
        match kind {
            0 if !targets.recent.is_empty() => {
                targets.recent[rng.random_range(0..targets.recent.len())]
            }
            2 if !targets.near_unknown.is_empty() => targets.near_unknown
                [rng.random_range(0..targets.near_unknown.len())]
            .saturating_add(offset),
            _ => targets
                .highest
                .map_or(0, |h| h.saturating_add(1))
                .saturating_add(offset),
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn reads_aim_at_acknowledged_numbers_past_the_highest_and_near_unknown_orders() {
        let targets = ReadTargets::default();
        let mut rng = StdRng::seed_from_u64(7);
        // Nothing known yet: the first numbers.
        assert!((0..50).all(|_| targets.pick(&mut rng) < AHEAD));
        targets.acknowledged(10);
        targets.unknown(); // would be #11 or so
        targets.acknowledged(20);
        let picks: Vec<u64> = (0..300).map(|_| targets.pick(&mut rng)).collect();
        assert!(picks.contains(&10) && picks.contains(&20));
        assert!(picks.iter().any(|&n| (21..21 + AHEAD).contains(&n)));
        assert!(picks.iter().any(|&n| (11..11 + AHEAD).contains(&n)));
        assert!(
            picks
                .iter()
                .all(|&n| n == 10 || n == 20 || (11..14).contains(&n) || (21..24).contains(&n))
        );
    }
}
