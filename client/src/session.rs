//! One simulated shopper: query a random toy, sometimes order it, remember what was bought;
//! with a history, also read some orders back while the load (and any fault) goes on.
//!
//! Also the retry rule every request type shares: resend a request that got no answer or a
//! "not now" (502, 503, 504; see `CallError::is_retryable`), a bounded number of times, after a
//! short growing pause.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use api::Reason;
use api::frontend::{FrontendClient, Reply};
use api::order::{Hop, OrderRecord, ReplicaClient};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use checker::history::Outcome;

use crate::history::{History, outcome_of, unix_ms};
use crate::probe::{READ_PROB, ReadTargets};
use crate::progress::Progress;
use crate::reuse::{KeyReuser, Resend, ReusedKey};
use crate::stats::RequestKind;
use crate::tally::Tally;
use crate::verify::PlacedOrder;

/// Resends after the first attempt of an order (or lookup) that got no answer or a "not now".
pub const MAX_RETRIES: u32 = 3;

/// Pause before the first resend; doubled before each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// What one session does.
#[derive(Debug, Clone)]
pub struct SessionPlan {
    pub index: u64,
    pub seed: u64,
    pub iterations: u64,
    pub prob: f64,
    pub max_quantity: u32,
    /// Where every operation is recorded (nowhere unless `--history`).
    pub history: History,
    /// When to stop, iterations left or not (`--duration`).
    pub stop_at: Option<Instant>,
    /// Set on SIGINT or SIGTERM: stop after the current iteration.
    pub stop: Arc<AtomicBool>,
    /// The store's dedup retention, for a session that re-sends some of its keys
    /// (`--reuse-sessions`); `None` for one that never does.
    pub reuse: Option<Duration>,
    /// Which orders to read back during the run, shared by every session; `None` when no
    /// history is recorded (the reads are for the checker only).
    pub reads: Option<Arc<ReadTargets>>,
    /// Replicas to read each acknowledged order back from at once (`--read-replicas`); empty
    /// for none.
    pub replicas: Arc<[ReplicaClient]>,
}

/// Pause after a query that got no answer: a shopper whose store is down does not hammer it.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_millis(100);

/// Runs one session to the end and hands back what it counted.
pub async fn run_session(
    store: FrontendClient,
    toys: Arc<[String]>,
    plan: SessionPlan,
    progress: Arc<Progress>,
    mut tally: Tally,
) -> Tally {
    let mut rng = session_rng(plan.seed, plan.index);
    // Its own stream: when a re-send is due depends on the store's answers, and must not
    // shift the session's draws.
    let mut reuser = plan
        .reuse
        .map(|retention| KeyReuser::new(retention, session_rng(!plan.seed, plan.index).random()));
    // Its own stream too: which orders are read depends on what was acknowledged.
    let mut probe_rng = session_rng(plan.seed.rotate_left(32), plan.index);
    for _ in 0..plan.iterations {
        if plan.stop.load(Ordering::Relaxed)
            || plan.stop_at.is_some_and(|stop| Instant::now() >= stop)
        {
            break;
        }
        if let Some(reuser) = &mut reuser
            && let Some((key, resend)) = reuser.take_due(Instant::now())
        {
            resend_order(&store, &plan, &mut tally, reuser, key, resend).await;
        }
        // Every iteration draws the same three numbers whatever the store answers, so the
        // sequence of toys and coin flips of a session depends on the seed alone.
        let toy = &toys[rng.random_range(0..toys.len())];
        let coin: f64 = rng.random();
        let size: f64 = rng.random();

        let started = Instant::now();
        let invoke = unix_ms();
        let reply = store.product_version(toy).await;
        tally.sent(RequestKind::Query, plan.index, started, status_of(&reply));
        plan.history.query(
            plan.index,
            invoke,
            toy,
            reply
                .as_ref()
                .map(|(answer, version)| (answer.quantity, *version)),
        );
        match reply {
            Ok((answer, _)) => {
                tally.answered(RequestKind::Query, started.elapsed());
                let shown = answer.quantity;
                if shown > 0 && coin < plan.prob {
                    let quantity = order_quantity(size, plan.max_quantity, shown);
                    let placed = place_order(&store, &plan, &mut tally, toy, quantity).await;
                    if let Some((resend, _, _)) = &placed {
                        read_back(&plan, &mut tally, &mut probe_rng, resend.number).await;
                    }
                    if let (Some(reuser), Some((resend, invoke, answered))) = (&mut reuser, placed)
                    {
                        reuser.offer(resend, invoke, answered);
                    }
                }
            }
            Err(failure) => {
                tally.failed(RequestKind::Query, format!("query {toy:?}: {failure}"));
                tokio::time::sleep(PAUSE_AFTER_FAILURE).await;
            }
        }
        if let Some(targets) = &plan.reads
            && probe_rng.random::<f64>() < READ_PROB
        {
            let number = targets.pick(&mut probe_rng);
            read_order(&store, &plan, &mut tally, number).await;
        }
        progress.tick();
    }
    tally
}

/// One `GET /orders/{number}` while the load runs, sent once and recorded as it ended: the
/// checker judges it (and counts the reads each fault met). It is not a measured request
/// kind, and no answer is not a request error: during a fault that is expected.
async fn read_order(store: &FrontendClient, plan: &SessionPlan, tally: &mut Tally, number: u64) {
    let started = Instant::now();
    let invoke = unix_ms();
    let reply = store.lookup(number).await;
    record_read(plan, tally, started, invoke, number, reply);
}

/// Reads acknowledged order #`number` back at once from a replica drawn from `rng`
/// (`--read-replicas`; nothing without), sent once and recorded like any read.
async fn read_back(plan: &SessionPlan, tally: &mut Tally, rng: &mut StdRng, number: u64) {
    if plan.replicas.is_empty() {
        return;
    }
    let replica = &plan.replicas[rng.random_range(0..plan.replicas.len())];
    let started = Instant::now();
    let invoke = unix_ms();
    let reply = replica.lookup(number, Hop::default()).await;
    record_read(plan, tally, started, invoke, number, reply);
}

/// Counts and records one order read that was sent once at `started` (`invoke` in Unix ms).
fn record_read(
    plan: &SessionPlan,
    tally: &mut Tally,
    started: Instant,
    invoke: f64,
    number: u64,
    reply: Reply<OrderRecord>,
) {
    tally.sent(RequestKind::Lookup, plan.index, started, status_of(&reply));
    let recorded = match &reply {
        Ok(record) => Ok(Some(record)),
        Err(failure) if failure.reason() == Some(Reason::NoSuchOrder) => Ok(None),
        Err(failure) => Err(failure),
    };
    plan.history.read(plan.index, invoke, number, recorded);
}

/// Tells the read targets what an order's answer says about which numbers exist.
fn note_answer<T>(plan: &SessionPlan, reply: &Reply<T>, number: impl Fn(&T) -> u64) {
    let Some(targets) = &plan.reads else { return };
    match reply {
        Ok(answer) => targets.acknowledged(number(answer)),
        Err(failure) if outcome_of(failure) == Outcome::Unknown => targets.unknown(),
        Err(_) => {}
    }
}

/// Orders `quantity` of `toy`; every resend carries the same idempotency key, so the store
/// places it at most once however many attempts it takes. On an `ok` answer, returns the
/// order and when it was sent and answered (for a key-reuse session to adopt).
async fn place_order(
    store: &FrontendClient,
    plan: &SessionPlan,
    tally: &mut Tally,
    toy: &str,
    quantity: u32,
) -> Option<(Resend, Instant, Instant)> {
    let key = uuid::Uuid::new_v4().to_string();
    let invoke = unix_ms();
    let sent = Instant::now();
    let (reply, latency) = with_retries(tally, RequestKind::Order, plan.index, || {
        store.order(toy, quantity, Some(&key))
    })
    .await;
    let answered = Instant::now();
    plan.history.order(
        plan.index,
        invoke,
        &key,
        toy,
        quantity,
        reply.as_ref(),
        None,
    );
    note_answer(plan, &reply, |placed| placed.order_number);
    match reply {
        Ok(answer) => {
            tally.answered(RequestKind::Order, latency);
            tally.placed.push(PlacedOrder {
                number: answer.order_number,
                name: toy.to_string(),
                quantity,
                session: plan.index,
            });
            return Some((
                Resend {
                    key,
                    toy: toy.to_string(),
                    quantity,
                    number: answer.order_number,
                },
                sent,
                answered,
            ));
        }
        Err(failure) if failure.is_out_of_stock() => {
            tally.answered(RequestKind::Order, latency);
            tally.out_of_stock += 1;
        }
        Err(failure) => tally.failed(
            RequestKind::Order,
            format!("order {quantity} x {toy:?} (key {key}): {failure}"),
        ),
    }
    None
}

/// Sends an acknowledged order again with its key, toy and quantity (a key-reuse session),
/// retried like any order, and records the answer with where it fell in the dedup window.
async fn resend_order(
    store: &FrontendClient,
    plan: &SessionPlan,
    tally: &mut Tally,
    reuser: &mut KeyReuser,
    key: ReusedKey,
    resend: Resend,
) {
    let invoke = unix_ms();
    let sent = Instant::now();
    let (reply, latency) = with_retries(tally, RequestKind::Order, plan.index, || {
        store.order(&resend.toy, resend.quantity, Some(&resend.key))
    })
    .await;
    let answered = Instant::now();
    let number = reply.as_ref().ok().map(|placed| placed.order_number);
    let reuse = reuser.answered(key, sent, answered, number);
    plan.history.order(
        plan.index,
        invoke,
        &resend.key,
        &resend.toy,
        resend.quantity,
        reply.as_ref(),
        Some(reuse),
    );
    note_answer(plan, &reply, |placed| placed.order_number);
    match reply {
        Ok(answer) => {
            tally.answered(RequestKind::Order, latency);
            tally.reused += 1;
            // Only a new number is a new order to verify; the old one is verified already.
            if answer.order_number != resend.number {
                tally.placed.push(PlacedOrder {
                    number: answer.order_number,
                    name: resend.toy.clone(),
                    quantity: resend.quantity,
                    session: plan.index,
                });
            }
        }
        // Refusals a store may give a key past its retention, told apart by their reason; the
        // checker judges when they came.
        Err(failure)
            if matches!(
                failure.reason(),
                Some(Reason::OutOfStock | Reason::RequestIdExpired | Reason::RequestIdReused)
            ) =>
        {
            tally.answered(RequestKind::Order, latency);
            tally.reused += 1;
        }
        Err(failure) => tally.failed(
            RequestKind::Order,
            format!(
                "re-sent order {} x {:?} (key {}, last #{}): {failure}",
                resend.quantity, resend.toy, resend.key, resend.number
            ),
        ),
    }
}

/// Sends `request` until it gets a non-retryable answer or the retries run out. Every attempt
/// goes on the timeline; the latency returned spans all of them, pauses included, because that
/// is how long the shopper waited.
pub async fn with_retries<T, F, Fut>(
    tally: &mut Tally,
    kind: RequestKind,
    session: u64,
    mut request: F,
) -> (Reply<T>, Duration)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Reply<T>>,
{
    let first = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    let mut retries = 0;
    loop {
        let started = Instant::now();
        let reply = request().await;
        tally.sent(kind, session, started, status_of(&reply));
        match &reply {
            Err(failure) if failure.is_retryable() && retries < MAX_RETRIES => {
                retries += 1;
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            _ => return (reply, first.elapsed()),
        }
    }
}

/// The status the timeline records: 200 for a `data` answer (the only success status the
/// store sends), the error's status, or 0 when there was no answer.
fn status_of<T>(reply: &Reply<T>) -> u16 {
    match reply {
        Ok(_) => 200,
        Err(failure) => failure.status_code(),
    }
}

/// Each session's own random stream: reproducible from the run's seed, different per session.
pub fn session_rng(seed: u64, index: u64) -> StdRng {
    // Spread consecutive indices far apart (golden-ratio increment, as in SplitMix64) so
    // session 1 of seed 7 is not session 0 of seed 8.
    StdRng::seed_from_u64(seed ^ index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Maps a uniform draw in [0, 1) to a quantity uniform in 1..=min(max_quantity, shown).
pub fn order_quantity(draw: f64, max_quantity: u32, shown: u32) -> u32 {
    let limit = max_quantity.min(shown).max(1);
    let picked = 1 + (draw * f64::from(limit)) as u32;
    picked.min(limit)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use api::ApiError;
    use api::client::CallError;
    use axum::http::StatusCode;

    /// Runs `with_retries` over canned replies; returns how many attempts were sent, the final
    /// status, and the timeline's statuses.
    async fn attempts(replies: Vec<Reply<u64>>) -> (usize, u16, Vec<u16>) {
        let mut tally = Tally::new(Instant::now(), true);
        let sent = Cell::new(0);
        let (reply, _) = with_retries(&mut tally, RequestKind::Order, 0, || {
            let reply = replies[sent.get()].clone();
            sent.set(sent.get() + 1);
            async move { reply }
        })
        .await;
        let timeline = tally.timeline.unwrap_or_default();
        (
            sent.get(),
            status_of(&reply),
            timeline.iter().map(|e| e.status).collect(),
        )
    }

    fn busy() -> Reply<u64> {
        Err(CallError::Api(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no leader",
        )))
    }

    #[tokio::test]
    async fn retries_only_what_may_not_have_happened() {
        let ok = || Ok(7);
        let refused = || {
            Err(CallError::Api(
                ApiError::new(StatusCode::BAD_REQUEST, "\"Tux\" is out of stock")
                    .with_reason(api::Reason::OutOfStock),
            ))
        };
        let dropped = || Err(CallError::Unreachable("reset".into()));

        assert_eq!(attempts(vec![ok()]).await, (1, 200, vec![200]));
        assert_eq!(attempts(vec![refused()]).await, (1, 400, vec![400]));
        assert_eq!(
            attempts(vec![dropped(), busy(), ok()]).await,
            (3, 200, vec![0, 503, 200])
        );
        // Three resends at most, then the last failure stands.
        let (sent, status, _) = attempts(vec![busy(), busy(), busy(), busy(), ok()]).await;
        assert_eq!((sent, status), (1 + MAX_RETRIES as usize, 503));
    }

    #[test]
    fn quantities_stay_within_the_limits() {
        assert_eq!(order_quantity(0.0, 1, 100), 1);
        assert_eq!(order_quantity(0.999, 1, 100), 1);
        assert_eq!(order_quantity(0.0, 5, 100), 1);
        assert_eq!(order_quantity(0.999, 5, 100), 5);
        assert_eq!(order_quantity(0.999, 5, 2), 2);
        assert_eq!(order_quantity(0.5, 4, 100), 3);
        let mut seen = [0u32; 4];
        for i in 0..1000 {
            let q = order_quantity(f64::from(i) / 1000.0, 4, 100);
            seen[(q - 1) as usize] += 1;
        }
        assert_eq!(seen, [250; 4]);
    }

    #[test]
    fn sessions_get_reproducible_distinct_streams() {
        let draw = |seed, index| session_rng(seed, index).random::<u64>();
        assert_eq!(draw(7, 0), draw(7, 0));
        assert_ne!(draw(7, 0), draw(7, 1));
        assert_ne!(draw(7, 1), draw(8, 0));
    }
}
