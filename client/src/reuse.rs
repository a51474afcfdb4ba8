//! Key-reuse sessions (`--reuse-sessions`): some of a session's acknowledged orders are sent
//! again later with the same `Idempotency-Key`, toy and quantity, once while the store must
//! still remember the key and once after its dedup retention (`--retention`) has run out, so
//! the checker sees the store's answers on both sides of the window (see
//! [`checker::history::Reuse`] for what each side allows).
//!
//! This module only decides which key to re-send when and what to record; the session sends.
//! Time is the client's monotonic clock ([`Instant`]): a wall-clock step during a run cannot
//! move a re-send across the window.

use std::time::{Duration, Instant};

use checker::history::{REUSE_MARGIN_MS, Reuse};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Most keys one session keeps for re-sending at once.
const MAX_KEYS: usize = 64;

/// At most one order a second is adopted for re-sending, so the re-sends spread over the run
/// instead of all coming from its first second.
const ADOPT_EVERY: Duration = Duration::from_secs(1);

/// Where the next re-send of a key aims, relative to the store's dedup retention R.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aim {
    /// Well inside the window: 10–40 % of R after the order may have been placed.
    Within,
    /// Past it: 0.5–3 s more than R + the margin after the key's last answer.
    After,
    /// Around R after the order may have been placed (± 1 s): whatever the store answers
    /// there is allowed, and it is where two retention clocks that disagree show.
    Edge,
    /// Past the window again, R/4 to R/2 after a re-send past it that placed no new order
    /// (refused, not answered, or still remembered).
    Again,
}

/// Most re-sends of one key.
pub const MAX_RESENDS: u32 = 4;

/// What follows a re-send aimed at `aim`, given whether its answer was a new number: a key's
/// first order's window is probed from inside, then from outside (which may place a new
/// order); a new order's window then from inside and at its edge; a re-send past the window
/// that placed nothing is tried once more later.
fn next_aim(aim: Aim, sent: u32, new_number: bool) -> Option<Aim> {
    if sent >= MAX_RESENDS {
        return None;
    }
    match (aim, new_number) {
        (Aim::Within, _) if sent == 1 => Some(Aim::After),
        (Aim::Within, _) => Some(Aim::Edge),
        (Aim::After | Aim::Again | Aim::Edge, true) => Some(Aim::Within),
        (Aim::After, false) => Some(Aim::Again),
        (Aim::Again | Aim::Edge, false) => None,
    }
}

/// One key this session will send again.
#[derive(Debug, Clone)]
pub struct ReusedKey {
    pub key: String,
    pub toy: String,
    pub quantity: u32,
    /// The number of the key's last `ok` answer.
    number: u64,
    /// The earliest moment the order #`number` may have been placed: the invoke of the first
    /// operation sent with the key after its previous `ok` answer.
    placed_from: Instant,
    /// When the last `ok` answer came.
    answered_at: Instant,
    /// The invoke of the first operation since the last `ok` answer, if any was sent.
    since_ok: Option<Instant>,
    /// What the next re-send aims at, how many were sent, and when the next one is due.
    aim: Aim,
    sent: u32,
    due: Instant,
}

/// A re-send in progress: what to send, and what to record once it is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resend {
    pub key: String,
    pub toy: String,
    pub quantity: u32,
    /// The number a deduplicating store answers.
    pub number: u64,
}

/// One session's keys to re-send, and its own random stream for when (separate from the
/// session's, whose draws must not depend on the store's answers).
#[derive(Debug)]
pub struct KeyReuser {
    retention: Duration,
    rng: StdRng,
    keys: Vec<ReusedKey>,
    last_adopted: Option<Instant>,
}

impl KeyReuser {
    pub fn new(retention: Duration, seed: u64) -> Self {
        Self {
            retention,
            rng: StdRng::seed_from_u64(seed),
            keys: Vec::new(),
            last_adopted: None,
        }
    }

    /// Keys waiting for a re-send.
    pub fn pending(&self) -> usize {
        self.keys.len()
    }

    /// Offers a first order the store acknowledged as `number` (sent at `invoke`, answered at
    /// `answered`); keeps it for re-sending unless one was adopted under a second ago or the
    /// session already keeps [`MAX_KEYS`].
    pub fn offer(&mut self, resend: Resend, invoke: Instant, answered: Instant) -> bool {
        if self.keys.len() >= MAX_KEYS
            || self
                .last_adopted
                .is_some_and(|last| answered.saturating_duration_since(last) < ADOPT_EVERY)
        {
            return false;
        }
        self.last_adopted = Some(answered);
        let mut key = ReusedKey {
            key: resend.key,
            toy: resend.toy,
            quantity: resend.quantity,
            number: resend.number,
            placed_from: invoke,
            answered_at: answered,
            since_ok: None,
            aim: Aim::Within,
            sent: 0,
            due: answered,
        };
        key.due = self.due(&key, answered);
        self.keys.push(key);
        true
    }

    /// When `key`'s next re-send is due (never before `now`).
    fn due(&mut self, key: &ReusedKey, now: Instant) -> Instant {
        let r = self.retention.as_secs_f64();
        let margin = REUSE_MARGIN_MS / 1000.0;
        let due = match key.aim {
            Aim::Again => now + secs(r * self.rng.random_range(0.25..0.5)),
            Aim::Within => key.placed_from + secs(r * self.rng.random_range(0.1..0.4)),
            Aim::After => key.answered_at + secs(r + margin + self.rng.random_range(0.5..3.0)),
            Aim::Edge => {
                let offset = self.rng.random_range(-1.0..1.0);
                if offset >= 0.0 {
                    key.placed_from + secs(r + offset)
                } else {
                    (key.placed_from + secs(r))
                        .checked_sub(secs(-offset))
                        .unwrap_or(now)
                }
            }
        };
        due.max(now)
    }

    /// The key whose re-send is due at `now`, if any; it is taken out until [`Self::answered`].
    pub fn take_due(&mut self, now: Instant) -> Option<(ReusedKey, Resend)> {
        let i = self.keys.iter().position(|key| key.due <= now)?;
        let key = self.keys.swap_remove(i);
        let resend = Resend {
            key: key.key.clone(),
            toy: key.toy.clone(),
            quantity: key.quantity,
            number: key.number,
        };
        Some((key, resend))
    }

    /// Records the answer to a re-send of `key` sent at `invoke` and answered (or given up on)
    /// at `complete`: `Some(number)` for an `ok` answer. Returns what the history records, and
    /// keeps the key for its next re-send, if any (see `next_aim`).
    pub fn answered(
        &mut self,
        mut key: ReusedKey,
        invoke: Instant,
        complete: Instant,
        answer: Option<u64>,
    ) -> Reuse {
        let record = Reuse {
            number: key.number,
            retention_ms: self.retention.as_secs_f64() * 1000.0,
            placed_ms: ms(complete.saturating_duration_since(key.placed_from)),
            answered_ms: ms(invoke.saturating_duration_since(key.answered_at)),
        };
        let first_since_ok = *key.since_ok.get_or_insert(invoke);
        let new_number = answer.is_some_and(|number| number != key.number);
        if let Some(number) = answer {
            if new_number {
                // A new order: it was placed by this re-send or by one sent since the last
                // answer that got none, not before the first of those.
                key.number = number;
                key.placed_from = first_since_ok;
            }
            key.answered_at = complete;
            key.since_ok = None;
        }
        key.sent += 1;
        if let Some(aim) = next_aim(key.aim, key.sent, new_number) {
            key.aim = aim;
            key.due = self.due(&key, complete);
            self.keys.push(key);
        }
        record
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(key: &str, number: u64) -> Resend {
        Resend {
            key: key.into(),
            toy: "Tux".into(),
            quantity: 2,
            number,
        }
    }

    #[test]
    fn a_key_is_re_sent_within_then_after_then_within_and_at_the_edge_of_its_window() {
        let r = Duration::from_secs(20);
        let mut reuser = KeyReuser::new(r, 7);
        let t0 = Instant::now();
        assert!(reuser.offer(order("k-a", 4), t0, t0 + secs(0.5)));
        assert!(reuser.take_due(t0 + secs(1.0)).is_none(), "not due yet");

        // Within: 2–8 s after the first order was sent.
        let (key, resend) = reuser
            .take_due(t0 + secs(8.0))
            .expect("due within the window");
        assert_eq!(resend, order("k-a", 4));
        let sent = key.due;
        assert!(sent >= t0 + secs(2.0) && sent <= t0 + secs(8.0));
        let within = reuser.answered(key, sent, sent + secs(0.1), Some(4));
        assert!(within.must_dedup(), "{within:?}");
        assert_eq!(within.window(), "within");

        // After: more than R + 2 s after the last answer.
        assert!(reuser.take_due(t0 + secs(22.0)).is_none());
        let (key, _) = reuser
            .take_due(t0 + secs(40.0))
            .expect("due after the window");
        let sent = key.due;
        let after = reuser.answered(key, sent, sent + secs(0.1), Some(9));
        assert_eq!(after.window(), "after", "{after:?}");
        assert_eq!(after.number, 4);

        // The new order #9 was placed by that re-send: its window runs from its invoke.
        let (key, resend) = reuser
            .take_due(t0 + secs(60.0))
            .expect("within #9's window");
        assert_eq!(resend.number, 9);
        assert!(key.due >= sent + secs(2.0) && key.due <= sent + secs(8.0));
        let again = reuser.answered(key.clone(), key.due, key.due + secs(0.1), Some(9));
        assert!(again.must_dedup(), "{again:?}");

        // Edge: R ± 1 s after #9 may have been placed; the plan ends there.
        let (key, _) = reuser.take_due(t0 + secs(90.0)).expect("at the edge");
        assert!(key.due >= sent + secs(19.0) && key.due <= sent + secs(21.0));
        reuser.answered(key.clone(), key.due, key.due + secs(0.1), None);
        assert_eq!(reuser.pending(), 0);
    }

    #[test]
    fn a_re_send_past_the_window_that_placed_nothing_is_tried_once_more_later() {
        let r = Duration::from_secs(20);
        let mut reuser = KeyReuser::new(r, 5);
        let t0 = Instant::now();
        reuser.offer(order("k-a", 4), t0, t0);
        let (key, _) = reuser.take_due(t0 + secs(8.0)).unwrap();
        reuser.answered(key.clone(), key.due, key.due, Some(4));
        let (key, _) = reuser.take_due(t0 + secs(40.0)).unwrap();
        let refused_at = key.due + secs(0.1);
        reuser.answered(key.clone(), key.due, refused_at, None);
        // Not at once: R/4 to R/2 later.
        assert!(reuser.take_due(refused_at + secs(4.9)).is_none());
        let (key, _) = reuser.take_due(refused_at + secs(10.0)).unwrap();
        let record = reuser.answered(key.clone(), key.due, key.due, Some(4));
        assert_eq!(record.window(), "after", "{record:?}");
        assert_eq!(reuser.pending(), 0, "the key's plan is over");
    }

    #[test]
    fn a_new_number_after_unanswered_re_sends_dates_from_the_first_of_them() {
        let mut reuser = KeyReuser::new(Duration::from_secs(20), 1);
        let t0 = Instant::now();
        reuser.offer(order("k-a", 4), t0, t0 + secs(0.1));
        let (key, _) = reuser.take_due(t0 + secs(9.0)).unwrap();
        let unanswered_at = key.due;
        reuser.answered(key, unanswered_at, unanswered_at + secs(10.0), None);
        let (key, _) = reuser.take_due(t0 + secs(60.0)).unwrap();
        let sent = key.due;
        let record = reuser.answered(key, sent, sent + secs(0.1), Some(9));
        // Recorded against #4, which may have been placed from t0 on.
        assert_eq!(record.number, 4);
        assert!((record.placed_ms - ms(sent + secs(0.1) - t0)).abs() < 1e-6);
        // #9 may have been placed by the unanswered re-send: the next one dates from it.
        let (key, _) = reuser.take_due(t0 + secs(200.0)).unwrap();
        let record = reuser.answered(key.clone(), key.due, key.due, Some(9));
        assert!(
            (record.placed_ms - ms(key.due - unanswered_at)).abs() < 1e-6,
            "{record:?}"
        );
    }

    #[test]
    fn adoption_is_spread_out_and_bounded() {
        let mut reuser = KeyReuser::new(Duration::from_secs(86_400), 3);
        let t0 = Instant::now();
        assert!(reuser.offer(order("k-0", 0), t0, t0));
        assert!(!reuser.offer(order("k-1", 1), t0, t0 + secs(0.5)));
        for i in 1..200u64 {
            reuser.offer(order(&format!("k-{i}"), i), t0, t0 + secs(i as f64));
        }
        assert_eq!(reuser.pending(), MAX_KEYS);
    }
}
