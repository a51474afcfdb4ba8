//! The nemesis schedule of `cluster/verify.sh`: which fault each round injects, and a number
//! that picks its target (which follower, say), drawn from the run's seed.
//!
//! Faults come in passes: each pass is a fresh shuffle of every fault kind, so a run of R
//! rounds uses every kind once before it uses any twice, and R = k × kinds uses each exactly
//! k times. A pass never starts with the kind the one before ended with, so no fault follows
//! itself (a heal and the same fault again would test less than two different faults). The
//! same seed gives the same schedule, which is what `--seed` promises for repeating a run.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// One round: the fault kind, and a number the round uses to pick among possible targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    pub fault: String,
    pub pick: u32,
}

/// Picks fall below this, so a script can take them modulo a small count without bias worth
/// speaking of.
const PICK_BELOW: u32 = 1 << 30;

/// The schedule of `rounds` rounds over `faults` (distinct kinds, at least one) from `seed`.
pub fn schedule(faults: &[String], rounds: usize, seed: u64) -> Vec<Round> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut kinds: Vec<&String> = Vec::with_capacity(rounds);
    while kinds.len() < rounds && !faults.is_empty() {
        let mut pass: Vec<&String> = faults.iter().collect();
        pass.shuffle(&mut rng);
        if kinds.last() == pass.first() {
            pass.rotate_left(1);
        }
        kinds.extend(pass);
    }
    kinds.truncate(rounds);
    kinds
        .into_iter()
        .map(|fault| Round {
            fault: fault.clone(),
            pick: rng.random_range(0..PICK_BELOW),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn kinds(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("fault-{i}")).collect()
    }

    #[test]
    fn every_kind_comes_once_in_each_pass() {
        let faults = kinds(10);
        for seed in 0..50 {
            let rounds = schedule(&faults, 30, seed);
            assert_eq!(rounds.len(), 30);
            for pass in rounds.chunks(faults.len()) {
                let seen: BTreeSet<&String> = pass.iter().map(|r| &r.fault).collect();
                assert_eq!(seen.len(), faults.len(), "seed {seed}: {pass:?}");
            }
        }
    }

    #[test]
    fn fewer_rounds_than_kinds_are_all_different() {
        let faults = kinds(10);
        let rounds = schedule(&faults, 7, 3);
        let seen: BTreeSet<&String> = rounds.iter().map(|r| &r.fault).collect();
        assert_eq!(seen.len(), 7);
    }

    #[test]
    fn no_fault_follows_itself_across_passes() {
        for n in 2..6 {
            let faults = kinds(n);
            for seed in 0..200 {
                let rounds = schedule(&faults, 6 * n, seed);
                for pair in rounds.windows(2) {
                    assert_ne!(pair[0].fault, pair[1].fault, "{n} kinds, seed {seed}");
                }
            }
        }
    }

    #[test]
    fn the_seed_decides_the_schedule() {
        let faults = kinds(10);
        assert_eq!(schedule(&faults, 30, 2028), schedule(&faults, 30, 2028));
        assert_ne!(schedule(&faults, 30, 2028), schedule(&faults, 30, 2029));
        let orders: BTreeSet<Vec<String>> = (0..20)
            .map(|seed| {
                let rounds = schedule(&faults, 10, seed);
                rounds.into_iter().map(|round| round.fault).collect()
            })
            .collect();
        assert!(
            orders.len() > 1,
            "the seed shuffles the kinds, not only the picks"
        );
        assert!(
            schedule(&faults, 30, 7)
                .iter()
                .all(|round| round.pick < PICK_BELOW)
        );
    }

    #[test]
    fn one_kind_repeats_and_no_kind_or_round_is_empty() {
        let one = kinds(1);
        let rounds = schedule(&one, 3, 1);
        assert!(rounds.iter().all(|r| r.fault == "fault-0"));
        assert_eq!(rounds.len(), 3);
        assert!(schedule(&[], 3, 1).is_empty());
        assert!(schedule(&kinds(4), 0, 1).is_empty());
    }
}
