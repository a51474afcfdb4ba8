//! Broken behaviours for verification runs, reachable only on a catalog started with
//! `--fault-injection` and armed with `--break KIND`: the catalog breaks one of the store's
//! promises on purpose, so that `cluster/verify.sh --break KIND` can show that the checker
//! notices (a verification that never fails proves nothing). Each one is a single call at the
//! place the correct code runs, and does nothing unless armed.

use api::cache_lease::StaleToy;

use crate::store::{ToyState, next_version};

/// A promise the catalog can be told to break (`--break`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Break {
    /// Stock changes are committed and acknowledged without pushing their invalidations to
    /// the front-ends, which keep serving the old stock from their caches (checker:
    /// `read-your-writes`).
    SkipInvalidation,
    /// A confirmed reservation's units also go back on sale, as if it had been released: they
    /// are counted sold and in stock at once (checker: `stock-conservation`).
    ReleaseConfirmed,
}

/// The armed broken behaviours; none by default.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    skip_invalidation: bool,
    release_confirmed: bool,
}

impl Faults {
    /// The faults of a catalog started with `--fault-injection`, with `breaks` armed.
    pub fn new(breaks: &[Break]) -> Self {
        for kind in breaks {
            tracing::warn!(
                ?kind,
                "fault injection: the catalog breaks a promise on purpose"
            );
        }
        Self {
            skip_invalidation: breaks.contains(&Break::SkipInvalidation),
            release_confirmed: breaks.contains(&Break::ReleaseConfirmed),
        }
    }

    /// `skip-invalidation`: the toys whose invalidation is pushed for a batch of stock
    /// changes: `stale`, or none when armed.
    pub fn invalidations(&self, stale: Vec<StaleToy>) -> Vec<StaleToy> {
        if self.skip_invalidation {
            Vec::new()
        } else {
            stale
        }
    }

    /// `release-confirmed`: when armed, gives the `quantity` units of a reservation just
    /// confirmed back to `toy`'s stock (a new version, as a release would).
    pub fn release_confirmed(&self, toy: &mut ToyState, quantity: u32, floor: u64) {
        if self.release_confirmed {
            toy.quantity = toy.quantity.saturating_add(quantity);
            toy.version = next_version(toy.version, floor);
        }
    }
}
