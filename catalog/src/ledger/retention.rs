//! Retention: one rule with the order replicas.
//!
//! The replicas forget a request id R (`--dedup-retention`) after its order was placed; the
//! catalog takes the same R. Between the two forgettings a retry of the same key is attempt 0
//! again, so the catalog must never let an old record hand out stock it already gave (answering
//! the duplicate of a confirmed reservation with its stored `Reserved` let the replicas place
//! an order that took no stock). With the *decision horizon* H = R/2 ([`Retention`]):
//!
//! - a record decides only while it is younger than H on the catalog's clock
//!   (`made_ms + H > now`). A reserve that finds a record answers `Confirmed` if it was
//!   confirmed (never the stored `Reserved`), `Released` if it was released, `Expired` if it is
//!   older than H (nothing changes), and otherwise its stored answer ([`answer_again`]);
//! - a release of a pending reservation older than H is refused: the reservation stays pending
//!   and its units stay held (never sold twice), counted in `catalog_releases_refused_total`
//!   and logged as an error. A confirmation is always applied ([`settle_step`]);
//! - `GET /reservations/pending` lists only pending reservations younger than H, so the
//!   leader's sweeper does not propose a held one for abandonment over and over;
//! - finished records (confirmed, released) are forgotten R + H after they finished; refused
//!   ones (out of stock) after the much shorter refusal window ([`Retention::refusal_ms`]).
//!
//! Why refusals are kept at all, and only briefly: no order and no log entry records that a
//! request id was refused, so the record is what makes an out-of-stock answer final. Without
//! it, a duplicate of the refused request still on its way inside the store (an attempt the
//! front-end gave up on, still queued at a leader) could reserve the same id once stock came
//! back, and place an order for a client that was told "out of stock". Every such duplicate
//! lives at most one request's deadline (the front-end's retry budget, 5 s; a leader's, at most
//! half the reservation timeout), so the window only has to outlast that, with a wide margin;
//! a client retrying the same key within the window gets the same answer. Kept R + H (36 h)
//! instead, every refused order, which costs a client nothing, held a synced record on disk
//! that long.
//!
//! Why this is safe: the replicas remember an order for R after it was placed, and placement
//! comes after its reservation was made. So as long as the clocks of the catalog and the
//! replicas differ by less than R/4, a reservation younger than H whose order committed is
//! still remembered by the replicas when its duplicate or its release is decided (the log then
//! answers the duplicate itself, and never abandons a committed order); past H the catalog no
//! longer lets the reservation change hands. A finished record is kept R + H, past the replicas'
//! R, with a margin of H for the clocks.

use std::time::Duration;

use api::catalog::{Decision, Reservation, ReserveOutcome};

use crate::error::CatalogError;
use crate::store::{ReservationRecord, ReservationState};

/// How long a refused reservation is remembered unless told otherwise (`--refusal-retention-ms`):
/// twelve times the front-end's retry budget, six times the reservation timeout.
pub const DEFAULT_REFUSAL_RETENTION: Duration = Duration::from_secs(60);

/// The retention rule of the module's doc, for a dedup retention R.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    dedup_ms: u64,
    refusal_ms: u64,
}

impl Retention {
    /// The rule for R = `dedup_retention`, refusals kept [`DEFAULT_REFUSAL_RETENTION`].
    pub fn new(dedup_retention: Duration) -> Self {
        Self {
            dedup_ms: u64::try_from(dedup_retention.as_millis()).unwrap_or(u64::MAX),
            refusal_ms: DEFAULT_REFUSAL_RETENTION.as_millis() as u64,
        }
    }

    /// The same rule with refused reservations kept `window` (never longer than the other
    /// finished records).
    pub fn with_refusal_window(mut self, window: Duration) -> Self {
        self.refusal_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// How long a refused reservation is remembered, in milliseconds.
    pub fn refusal_ms(&self) -> u64 {
        self.refusal_ms
            .min(self.dedup_ms.saturating_add(self.horizon_ms()))
    }

    /// Where a reservation refused at `now` goes in the index of finished records, which is
    /// forgotten R + H behind the clock ([`Self::forget_cutoff`]): [`Self::refusal_ms`] after
    /// `now`, less R + H, so that it is forgotten once the refusal window is over. Never in
    /// the future, and above every cutoff so far (the clock moving forward), so forgetting,
    /// which resumes where it stopped, still finds it.
    pub fn refusal_finished_at(&self, now: u64) -> u64 {
        let keep = self.dedup_ms.saturating_add(self.horizon_ms());
        now.saturating_sub(keep - self.refusal_ms())
    }

    /// H = R/2: how long a reservation record decides.
    pub fn horizon_ms(&self) -> u64 {
        self.dedup_ms / 2
    }

    /// Whether a reservation made at `made_ms` still decides at `now`.
    pub fn decides(&self, made_ms: u64, now: u64) -> bool {
        made_ms.saturating_add(self.horizon_ms()) > now
    }

    /// Records that finished at or before this are forgotten at `now`: R + H ago.
    pub fn forget_cutoff(&self, now: u64) -> u64 {
        now.saturating_sub(self.dedup_ms.saturating_add(self.horizon_ms()))
    }
}

/// How a reservation whose id already has a record is answered; nothing changes.
pub fn answer_again(
    record: &ReservationRecord,
    reservation: &Reservation,
    now: u64,
    retention: Retention,
) -> Result<ReserveOutcome, CatalogError> {
    match record.state {
        // Its stock belongs to a committed order: never hand it out again.
        ReservationState::Confirmed => Ok(ReserveOutcome::Confirmed),
        // The log abandoned this attempt: it can never take stock again.
        ReservationState::Released => Ok(ReserveOutcome::Released),
        ReservationState::Pending | ReservationState::Refused
            if !retention.decides(record.made_ms, now) =>
        {
            Ok(ReserveOutcome::Expired)
        }
        ReservationState::Pending | ReservationState::Refused => {
            if record.name != reservation.name || record.quantity != reservation.quantity {
                return Err(CatalogError::RequestIdReused(reservation.id.to_string()));
            }
            Ok(record.outcome.clone())
        }
    }
}

/// What a settlement does to a reservation that has a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleStep {
    /// Settle the pending reservation into this state.
    Apply(ReservationState),
    /// A release of a pending reservation past the horizon: it stays pending, units held.
    RefuseRelease,
    /// The record was settled the other way: the first settlement stands.
    Contradiction,
    /// Nothing to do; answer with what the record is.
    AsBefore,
}

/// The settlement rule of the module's doc.
pub fn settle_step(
    state: ReservationState,
    made_ms: u64,
    decision: Decision,
    now: u64,
    retention: Retention,
) -> SettleStep {
    match (state, decision) {
        (ReservationState::Pending, Decision::Confirm) => {
            SettleStep::Apply(ReservationState::Confirmed)
        }
        (ReservationState::Pending, Decision::Release) if retention.decides(made_ms, now) => {
            SettleStep::Apply(ReservationState::Released)
        }
        (ReservationState::Pending, Decision::Release) => SettleStep::RefuseRelease,
        (ReservationState::Confirmed, Decision::Release)
        | (ReservationState::Released, Decision::Confirm) => SettleStep::Contradiction,
        _ => SettleStep::AsBefore,
    }
}
