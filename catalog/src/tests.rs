//! Catalog unit tests: the ledger against a real RocksDB in a temporary directory, and the
//! invalidation push against a real HTTP endpoint standing in for a front-end.
//!
//! Length: over a thousand lines of tests and their helpers, for the two modules the catalog
//! has of any size (the ledger and the invalidation push), which share one fixture; to be cut
//! by subject (reservations, settlement, retention, restart, push) when it next grows.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use api::cache_lease::Invalidation;
use api::catalog::{
    Decision, Reservation, ReservationId, ReserveOutcome, SettleOutcome, Settlement,
};
use api::client::ServiceClient;
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use tempfile::TempDir;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cache_lease::CacheLeases;
use crate::error::CatalogError;
use crate::ledger::{Clock, Ledger, LedgerSettings, Retention};
use crate::metrics::CatalogMetrics;
use crate::store::StockStore;

/// The dedup retention R of the tests that move the clock, and H = R/2.
const R_MS: u64 = 3_600_000;
const H_MS: u64 = R_MS / 2;

/// A clock the test moves by hand (Unix milliseconds).
#[derive(Clone)]
struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    fn new() -> Self {
        Self(Arc::new(AtomicU64::new(1_700_000_000_000)))
    }

    fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    fn clock(&self) -> Clock {
        let now = self.0.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    }
}

struct Running {
    store: Arc<StockStore>,
    ledger: Ledger,
    leases: Arc<CacheLeases>,
    metrics: CatalogMetrics,
    stop: CancellationToken,
    writer: tokio::task::JoinHandle<()>,
}

impl Running {
    /// A ledger on the system clock with the default retention.
    fn start(dir: &TempDir, stock: u32, lease: Duration) -> Self {
        Self::start_with(
            dir,
            stock,
            lease,
            LedgerSettings {
                retention: Retention::new(Duration::from_secs(86_400)),
                clock: crate::ledger::system_clock(),
                faults: crate::faults::Faults::default(),
            },
        )
    }

    /// A ledger with retention [`R_MS`] on `clock`.
    fn start_on(dir: &TempDir, stock: u32, clock: &ManualClock) -> Self {
        Self::start_with(
            dir,
            stock,
            Duration::from_secs(1),
            LedgerSettings {
                retention: Retention::new(Duration::from_millis(R_MS)),
                clock: clock.clock(),
                faults: crate::faults::Faults::default(),
            },
        )
    }

    fn start_with(dir: &TempDir, stock: u32, lease: Duration, settings: LedgerSettings) -> Self {
        let store = Arc::new(StockStore::open(dir.path(), stock).expect("store opens"));
        let client = ServiceClient::new(Duration::from_millis(300), None);
        let leases = Arc::new(
            CacheLeases::new(
                lease,
                client,
                store.clone(),
                Counter::default(),
                Counter::default(),
            )
            .expect("leases load"),
        );
        let stop = CancellationToken::new();
        let metrics = CatalogMetrics::default();
        // Open from the start: these tests reset no front-ends.
        let (_, ready) = tokio::sync::watch::channel(true);
        let (ledger, writer) = Ledger::start(
            store.clone(),
            leases.clone(),
            metrics.clone(),
            ready,
            settings,
            stop.clone(),
        )
        .expect("ledger starts");
        Self {
            store,
            ledger,
            leases,
            metrics,
            stop,
            writer,
        }
    }

    /// Stops the writer and releases the database.
    async fn stop(self) {
        self.stop.cancel();
        self.writer.await.expect("writer stops cleanly");
        drop(self.ledger);
    }
}

fn id(request_id: &str) -> ReservationId {
    ReservationId {
        request_id: request_id.into(),
        attempt: 0,
    }
}

fn reservation(request_id: &str, name: &str, quantity: u32) -> Reservation {
    Reservation {
        id: id(request_id),
        name: name.into(),
        quantity,
    }
}

fn settle(request_id: &str, decision: Decision) -> Settlement {
    Settlement {
        id: id(request_id),
        decision,
    }
}

fn quantity(ledger: &Ledger, name: &str) -> u32 {
    ledger.product(name).expect("toy exists").quantity
}

#[tokio::test]
async fn a_reservation_id_takes_stock_once_and_always_gets_the_same_answer() {
    let dir = TempDir::new().unwrap();
    let catalog = Running::start(&dir, 100, Duration::from_secs(1));
    let first = catalog
        .ledger
        .reserve(reservation("r1", "Tux", 3))
        .await
        .unwrap();
    let again = catalog
        .ledger
        .reserve(reservation("r1", "Tux", 3))
        .await
        .unwrap();
    assert_eq!(first, again);
    assert!(matches!(
        first,
        ReserveOutcome::Reserved { remaining: 97, .. }
    ));
    assert_eq!(quantity(&catalog.ledger, "Tux"), 97);

    let reused = catalog.ledger.reserve(reservation("r1", "Tux", 4)).await;
    assert!(matches!(reused, Err(CatalogError::RequestIdReused(_))));
    assert_eq!(
        quantity(&catalog.ledger, "Tux"),
        97,
        "a refused reuse changes nothing"
    );

    // Concurrent duplicates of one new request id land in the same batch or in successive
    // ones: either way exactly one decrement.
    let dupes: Vec<_> = (0..20)
        .map(|_| catalog.ledger.reserve(reservation("r2", "Lego", 5)))
        .collect();
    let outcomes = futures::future::join_all(dupes).await;
    assert!(
        outcomes
            .iter()
            .all(|o| o.as_ref().ok() == outcomes[0].as_ref().ok())
    );
    assert_eq!(quantity(&catalog.ledger, "Lego"), 95);
    catalog.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_reservations_of_the_last_ten_units_never_oversell() {
    let dir = TempDir::new().unwrap();
    let catalog = Running::start(&dir, 10, Duration::from_secs(1));
    let buyers: Vec<_> = (0..50)
        .map(|i| {
            let ledger = catalog.ledger.clone();
            tokio::spawn(async move {
                ledger
                    .reserve(reservation(&format!("buyer-{i}"), "Slinky", 1))
                    .await
            })
        })
        .collect();
    let mut bought = 0;
    let mut refused = 0;
    for buyer in buyers {
        match buyer.await.unwrap().unwrap() {
            ReserveOutcome::Reserved { .. } => bought += 1,
            ReserveOutcome::OutOfStock { available: 0 } => refused += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!((bought, refused), (10, 40));
    assert_eq!(quantity(&catalog.ledger, "Slinky"), 0);
    catalog.stop().await;
}

#[tokio::test]
async fn unknown_toys_and_bad_requests_change_nothing() {
    let dir = TempDir::new().unwrap();
    let catalog = Running::start(&dir, 100, Duration::from_secs(1));
    let before = catalog.ledger.products();
    assert_eq!(
        catalog
            .ledger
            .reserve(reservation("u1", "Flux Capacitor", 1))
            .await
            .unwrap(),
        ReserveOutcome::UnknownProduct
    );
    assert!(matches!(
        catalog.ledger.reserve(reservation("u2", "Tux", 0)).await,
        Err(CatalogError::InvalidQuantity)
    ));
    assert!(matches!(
        catalog
            .ledger
            .reserve(reservation("has space", "Tux", 1))
            .await,
        Err(CatalogError::InvalidRequestId)
    ));
    assert!(matches!(
        catalog
            .ledger
            .reserve(reservation("big", "Tux", 101))
            .await
            .unwrap(),
        ReserveOutcome::OutOfStock { available: 100 }
    ));
    assert_eq!(catalog.ledger.products(), before);
    catalog.stop().await;
}

#[tokio::test]
async fn restock_refills_only_the_toys_that_ran_out() {
    let dir = TempDir::new().unwrap();
    let catalog = Running::start(&dir, 5, Duration::from_secs(1));
    catalog
        .ledger
        .reserve(reservation("a", "Tux", 5))
        .await
        .unwrap();
    catalog
        .ledger
        .reserve(reservation("b", "Lego", 2))
        .await
        .unwrap();
    let lego_version = catalog.ledger.product("Lego").unwrap().version;
    let tux_version = catalog.ledger.product("Tux").unwrap().version;

    let restocked = catalog.ledger.restock().await.unwrap();
    assert_eq!(restocked, vec!["Tux".to_string()]);
    assert_eq!(quantity(&catalog.ledger, "Tux"), 5);
    assert_eq!(quantity(&catalog.ledger, "Lego"), 3);
    assert_eq!(
        catalog.ledger.product("Lego").unwrap().version,
        lego_version
    );
    assert!(catalog.ledger.product("Tux").unwrap().version > tux_version);
    assert!(
        catalog.ledger.restock().await.unwrap().is_empty(),
        "nothing left to refill"
    );
    catalog.stop().await;
}

#[tokio::test]
async fn stock_and_reservation_records_survive_a_restart_on_the_same_directory() {
    let dir = TempDir::new().unwrap();
    let catalog = Running::start(&dir, 100, Duration::from_secs(1));
    let first = catalog
        .ledger
        .reserve(reservation("keep", "Kite", 7))
        .await
        .unwrap();
    let version = catalog.ledger.product("Kite").unwrap().version;
    catalog.stop().await;

    // The initial stock given on reopening is ignored: the catalog keeps what it was created
    // with.
    let catalog = Running::start(&dir, 3, Duration::from_secs(1));
    assert_eq!(quantity(&catalog.ledger, "Kite"), 93);
    assert_eq!(catalog.ledger.product("Kite").unwrap().version, version);
    assert_eq!(
        catalog
            .ledger
            .reserve(reservation("keep", "Kite", 7))
            .await
            .unwrap(),
        first
    );
    assert_eq!(
        quantity(&catalog.ledger, "Kite"),
        93,
        "a retried request id does not buy again"
    );
    catalog
        .ledger
        .reserve(reservation("drain", "Kite", 93))
        .await
        .unwrap();
    assert_eq!(
        catalog.ledger.restock().await.unwrap(),
        vec!["Kite".to_string()]
    );
    assert_eq!(quantity(&catalog.ledger, "Kite"), 100);
    catalog.stop().await;
}

/// Invalidations a stand-in front-end received, with when.
type Received = Arc<Mutex<Vec<(Instant, Invalidation)>>>;

/// A stand-in front-end that records the invalidations it receives.
async fn recording_frontend() -> (reqwest::Url, Received) {
    let seen: Received = Arc::default();
    let router = Router::new()
        .route(
            api::frontend::routes::INVALIDATE,
            post(
                |State(seen): State<Received>,
                 axum::Json(body): axum::Json<Invalidation>| async move {
                    seen.lock().push((Instant::now(), body));
                    axum::Json(serde_json::json!({"data": "ok"}))
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = reqwest::Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, seen)
}

#[tokio::test]
async fn a_reservation_is_acknowledged_only_after_the_front_end_has_its_invalidation() {
    let dir = TempDir::new().unwrap();
    let catalog = Running::start(&dir, 100, Duration::from_secs(5));
    let (url, seen) = recording_frontend().await;
    assert!(catalog.leases.grant(url, None).await.unwrap().fresh);

    let outcome = catalog
        .ledger
        .reserve(reservation("inv", "Yo-Yo", 2))
        .await
        .unwrap();
    let acknowledged = Instant::now();
    let ReserveOutcome::Reserved { version, .. } = outcome else {
        panic!("expected a purchase, got {outcome:?}");
    };
    let seen = seen.lock().clone();
    assert_eq!(seen.len(), 1, "exactly one push for one buy");
    let (received, invalidation) = &seen[0];
    assert!(*received <= acknowledged);
    assert_eq!(invalidation.toys.len(), 1);
    assert_eq!(invalidation.toys[0].name, "Yo-Yo");
    assert_eq!(invalidation.toys[0].version, version);
    catalog.stop().await;
}

#[tokio::test]
async fn an_unreachable_front_end_is_revoked_and_its_lease_waited_out() {
    let dir = TempDir::new().unwrap();
    let lease = Duration::from_millis(300);
    let catalog = Running::start(&dir, 100, lease);
    // A port nobody listens on: connections are refused.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        reqwest::Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap()
    };
    let granted_at = Instant::now();
    catalog.leases.grant(dead.clone(), None).await.unwrap();
    catalog
        .ledger
        .reserve(reservation("late", "Marbles", 1))
        .await
        .unwrap();
    assert!(
        Instant::now() >= granted_at + lease,
        "the buy must not be acknowledged while the unreachable front-end may still trust its cache"
    );
    assert_eq!(catalog.leases.live(), 0, "the lease is revoked");
    assert!(
        catalog.leases.grant(dead, None).await.unwrap().fresh,
        "coming back, the front-end must empty its cache"
    );
    catalog.stop().await;
}

/// Every toy's accounts hold: what it started with and was restocked by is what is available,
/// held by pending reservations, or sold.
fn accounts_balance(ledger: &Ledger, sold: &[(&str, u64)]) {
    for toy in ledger.stock() {
        let sold = sold
            .iter()
            .filter(|(name, _)| *name == toy.name)
            .map(|(_, units)| units)
            .sum::<u64>();
        assert_eq!(
            toy.initial + toy.restocked,
            u64::from(toy.quantity) + toy.pending + sold,
            "the accounts of {} do not balance: {toy:?}",
            toy.name
        );
    }
}

#[tokio::test]
async fn a_confirmed_reservation_stays_sold_and_a_released_one_comes_back_with_an_invalidation() {
    let dir = TempDir::new().unwrap();
    let catalog = Running::start(&dir, 100, Duration::from_secs(5));
    let (url, seen) = recording_frontend().await;
    catalog.leases.grant(url, None).await.unwrap();

    catalog
        .ledger
        .reserve(reservation("keep", "Lego", 3))
        .await
        .unwrap();
    catalog
        .ledger
        .reserve(reservation("drop", "Lego", 5))
        .await
        .unwrap();
    assert_eq!(quantity(&catalog.ledger, "Lego"), 92);
    let pending = catalog.ledger.pending(Duration::ZERO, 10).unwrap();
    assert_eq!(
        pending.len(),
        2,
        "both reservations are pending: {pending:?}"
    );
    accounts_balance(&catalog.ledger, &[]);

    let confirmed = catalog
        .ledger
        .settle(settle("keep", Decision::Confirm))
        .await;
    assert_eq!(confirmed.unwrap(), SettleOutcome::Confirmed);
    let before_release = seen.lock().len();
    let released = catalog
        .ledger
        .settle(settle("drop", Decision::Release))
        .await;
    assert_eq!(released.unwrap(), SettleOutcome::Released);
    assert_eq!(
        quantity(&catalog.ledger, "Lego"),
        97,
        "the released units are back"
    );
    let pushes = seen.lock().clone();
    assert_eq!(
        pushes.len(),
        before_release + 1,
        "the release was invalidated before it was acknowledged"
    );
    assert_eq!(pushes[before_release].1.toys[0].name, "Lego");
    assert!(
        catalog
            .ledger
            .pending(Duration::ZERO, 10)
            .unwrap()
            .is_empty()
    );
    accounts_balance(&catalog.ledger, &[("Lego", 3)]);

    // Settling again is idempotent; settling the other way is refused (the first stands).
    let again = catalog
        .ledger
        .settle(settle("drop", Decision::Release))
        .await;
    assert_eq!(again.unwrap(), SettleOutcome::Released);
    let contradiction = catalog
        .ledger
        .settle(settle("keep", Decision::Release))
        .await;
    assert_eq!(contradiction.unwrap(), SettleOutcome::Confirmed);
    assert_eq!(quantity(&catalog.ledger, "Lego"), 97);
    // A released reservation id never takes stock again.
    let late = catalog
        .ledger
        .reserve(reservation("drop", "Lego", 5))
        .await
        .unwrap();
    assert_eq!(late, ReserveOutcome::Released);
    assert_eq!(quantity(&catalog.ledger, "Lego"), 97);
    catalog.stop().await;
}

#[tokio::test]
async fn a_release_that_overtakes_its_reservation_keeps_the_reservation_from_ever_taking_stock() {
    let dir = TempDir::new().unwrap();
    let catalog = Running::start(&dir, 100, Duration::from_secs(1));
    let released = catalog
        .ledger
        .settle(settle("late", Decision::Release))
        .await;
    assert_eq!(released.unwrap(), SettleOutcome::Released);
    let confirm_unknown = catalog
        .ledger
        .settle(settle("never", Decision::Confirm))
        .await;
    assert_eq!(confirm_unknown.unwrap(), SettleOutcome::Unknown);
    let reserved = catalog
        .ledger
        .reserve(reservation("late", "Kite", 2))
        .await
        .unwrap();
    assert_eq!(reserved, ReserveOutcome::Released);
    assert_eq!(quantity(&catalog.ledger, "Kite"), 100);
    accounts_balance(&catalog.ledger, &[]);
    catalog.stop().await;
}

#[tokio::test]
async fn pending_reservations_survive_a_restart_and_are_listed_oldest_first() {
    let dir = TempDir::new().unwrap();
    let catalog = Running::start(&dir, 100, Duration::from_secs(1));
    for (i, toy) in ["Tux", "Barbie", "Tux"].iter().enumerate() {
        catalog
            .ledger
            .reserve(reservation(&format!("p{i}"), toy, 1))
            .await
            .unwrap();
    }
    catalog.ledger.restock().await.unwrap();
    catalog.stop().await;

    let catalog = Running::start(&dir, 100, Duration::from_secs(1));
    let pending = catalog.ledger.pending(Duration::ZERO, 10).unwrap();
    let ids: Vec<&str> = pending.iter().map(|p| p.id.request_id.as_str()).collect();
    assert_eq!(ids, vec!["p0", "p1", "p2"]);
    assert_eq!(catalog.ledger.pending(Duration::ZERO, 2).unwrap().len(), 2);
    assert!(
        catalog
            .ledger
            .pending(Duration::from_secs(3600), 10)
            .unwrap()
            .is_empty(),
        "none is an hour old"
    );
    let tux = catalog
        .ledger
        .stock()
        .into_iter()
        .find(|toy| toy.name == "Tux")
        .unwrap();
    assert_eq!((tux.quantity, tux.pending), (98, 2));
    accounts_balance(&catalog.ledger, &[]);
    catalog.stop().await;
}

#[tokio::test]
async fn restocks_are_counted_in_the_accounts_and_finished_records_are_forgotten_after_retention() {
    let dir = TempDir::new().unwrap();
    let clock = ManualClock::new();
    let catalog = Running::start_on(&dir, 4, &clock);
    catalog
        .ledger
        .reserve(reservation("all", "Yo-Yo", 4))
        .await
        .unwrap();
    catalog
        .ledger
        .settle(settle("all", Decision::Confirm))
        .await
        .unwrap();
    assert_eq!(catalog.ledger.restock().await.unwrap(), vec!["Yo-Yo"]);
    accounts_balance(&catalog.ledger, &[("Yo-Yo", 4)]);
    let yoyo = catalog
        .ledger
        .stock()
        .into_iter()
        .find(|toy| toy.name == "Yo-Yo")
        .unwrap();
    assert_eq!((yoyo.restocked, yoyo.quantity), (4, 4));

    // Within R + H the record is kept: a retry is told its order exists.
    catalog
        .ledger
        .reserve(reservation("open", "Tux", 1))
        .await
        .unwrap();
    clock.advance(R_MS + H_MS - 1);
    assert_eq!(catalog.ledger.forget_due(100).unwrap(), 0);
    assert_eq!(
        catalog
            .ledger
            .reserve(reservation("all", "Yo-Yo", 4))
            .await
            .unwrap(),
        ReserveOutcome::Confirmed
    );
    assert_eq!(
        quantity(&catalog.ledger, "Yo-Yo"),
        4,
        "the retry took nothing"
    );
    // At R + H it is forgotten; a pending reservation never is.
    clock.advance(1);
    assert_eq!(catalog.ledger.forget_due(100).unwrap(), 1);
    assert!(catalog.store.find(&id("all")).unwrap().is_none());
    assert!(catalog.store.find(&id("open")).unwrap().is_some());
    catalog.stop().await;
}

/// Copies a RocksDB directory as it is now: what a crash at this moment would leave (every
/// synced write is in it, nothing written later).
fn crash_image(from: &TempDir) -> TempDir {
    let to = TempDir::new().unwrap();
    for entry in std::fs::read_dir(from.path()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.path().join(entry.file_name())).unwrap();
        }
    }
    to
}

/// Issue 20, finding 2: a `fresh` grant whose answer never reached the front-end.
#[tokio::test]
async fn a_fresh_grant_whose_answer_was_lost_is_fresh_again() {
    let dir = TempDir::new().unwrap();
    let catalog = Running::start(&dir, 100, Duration::from_secs(5));
    let (url, _) = recording_frontend().await;
    assert!(catalog.leases.grant(url.clone(), None).await.unwrap().fresh);
    // That answer was lost: the front-end never emptied its cache, and renews as before.
    let again = catalog.leases.grant(url.clone(), None).await.unwrap();
    assert!(
        again.fresh,
        "a front-end that never saw its fresh grant must be told again"
    );
    // Once it echoes the epoch it acted on, renewals are plain.
    let renewed = catalog
        .leases
        .grant(url.clone(), Some(again.epoch))
        .await
        .unwrap();
    assert!(!renewed.fresh);
    assert_eq!(renewed.epoch, again.epoch);
    // An echo of an older epoch (a fresh answer lost after a revocation) is fresh again.
    assert!(
        catalog
            .leases
            .grant(url, Some(again.epoch - 1))
            .await
            .unwrap()
            .fresh
    );
    catalog.stop().await;
}

/// Issue 20, finding 4: a version shown before a crash is never shown again for another
/// quantity, even when the crash loses the (unsynced) change that made it.
#[tokio::test]
async fn versions_are_never_reused_after_a_crash_loses_an_unsynced_change() {
    let dir = TempDir::new().unwrap();
    let catalog = Running::start(&dir, 100, Duration::from_secs(1));
    catalog
        .ledger
        .reserve(reservation("synced", "Kite", 2))
        .await
        .unwrap();
    let image = crash_image(&dir);
    // A release is not synced: a crash may lose it, and its version with it.
    catalog
        .ledger
        .settle(settle("synced", Decision::Release))
        .await
        .unwrap();
    let shown = catalog.ledger.product("Kite").unwrap();
    catalog.stop().await;

    let catalog = Running::start(&image, 100, Duration::from_secs(1));
    assert_eq!(
        quantity(&catalog.ledger, "Kite"),
        98,
        "the release was lost"
    );
    catalog
        .ledger
        .reserve(reservation("after", "Kite", 1))
        .await
        .unwrap();
    let next = catalog.ledger.product("Kite").unwrap();
    assert!(
        next.version > shown.version,
        "version {} showed quantity {} before the crash; now version {} shows {}",
        shown.version,
        shown.quantity,
        next.version,
        next.quantity
    );
    catalog.stop().await;
}

/// Issue 20, finding 5: one pass of forgetting catches up with more than one chunk.
#[tokio::test]
async fn forgetting_catches_up_with_a_backlog_larger_than_one_chunk() {
    let dir = TempDir::new().unwrap();
    let clock = ManualClock::new();
    let catalog = Running::start_on(&dir, 1, &clock);
    // Refused reservations are finished at once.
    let refused: Vec<_> = (0..250)
        .map(|i| reservation(&format!("big-{i}"), "Tux", 2))
        .collect();
    for outcome in catalog.ledger.reserve_many(refused).await {
        assert!(matches!(outcome, Ok(ReserveOutcome::OutOfStock { .. })));
    }
    clock.advance(R_MS + H_MS);
    let forgotten = catalog.ledger.forget_due(100).unwrap();
    assert_eq!(forgotten, 250, "one pass forgets the whole backlog");
    for i in 0..250 {
        assert!(
            catalog
                .store
                .find(&id(&format!("big-{i}")))
                .unwrap()
                .is_none()
        );
    }
    assert_eq!(catalog.metrics.reservations_forgotten.get(), 250);
    // The next pass starts where this one stopped and finds only what is newly due.
    assert_eq!(catalog.ledger.forget_due(100).unwrap(), 0);
    let later: Vec<_> = (0..3)
        .map(|i| reservation(&format!("later-{i}"), "Tux", 2))
        .collect();
    catalog.ledger.reserve_many(later).await;
    clock.advance(R_MS + H_MS);
    assert_eq!(catalog.ledger.forget_due(100).unwrap(), 3);
    catalog.ledger.measure_records().unwrap();
    assert_eq!(catalog.metrics.pending_reservations.get(), 0);
    catalog.stop().await;
}

/// Issue 20, finding 4 of the retention rule: the duplicate of a confirmed reservation.
#[tokio::test]
async fn the_duplicate_of_a_confirmed_reservation_answers_confirmed() {
    let dir = TempDir::new().unwrap();
    let catalog = Running::start(&dir, 100, Duration::from_secs(1));
    catalog
        .ledger
        .reserve(reservation("k", "Lego", 2))
        .await
        .unwrap();
    catalog
        .ledger
        .settle(settle("k", Decision::Confirm))
        .await
        .unwrap();
    let again = catalog
        .ledger
        .reserve(reservation("k", "Lego", 2))
        .await
        .unwrap();
    assert_eq!(again, ReserveOutcome::Confirmed);
    assert_eq!(quantity(&catalog.ledger, "Lego"), 98);
    catalog.stop().await;
}

#[tokio::test]
async fn an_old_pending_duplicate_answers_expired_and_changes_nothing() {
    let dir = TempDir::new().unwrap();
    let clock = ManualClock::new();
    let catalog = Running::start_on(&dir, 100, &clock);
    let first = catalog
        .ledger
        .reserve(reservation("p", "Lego", 2))
        .await
        .unwrap();
    catalog
        .ledger
        .reserve(reservation("refused", "Lego", 1000))
        .await
        .unwrap();
    clock.advance(H_MS - 1);
    assert_eq!(
        catalog
            .ledger
            .reserve(reservation("p", "Lego", 2))
            .await
            .unwrap(),
        first,
        "younger than H: the stored answer"
    );
    clock.advance(1);
    for request_id in ["p", "refused"] {
        let quantity = if request_id == "p" { 2 } else { 1000 };
        assert_eq!(
            catalog
                .ledger
                .reserve(reservation(request_id, "Lego", quantity))
                .await
                .unwrap(),
            ReserveOutcome::Expired,
            "{request_id} is H old"
        );
    }
    assert_eq!(quantity(&catalog.ledger, "Lego"), 98);
    accounts_balance(&catalog.ledger, &[]);
    catalog.stop().await;
}

#[tokio::test]
async fn an_old_release_is_refused_and_its_units_stay_held_but_a_confirm_applies() {
    let dir = TempDir::new().unwrap();
    let clock = ManualClock::new();
    let catalog = Running::start_on(&dir, 100, &clock);
    for request_id in ["held", "sold"] {
        catalog
            .ledger
            .reserve(reservation(request_id, "Kite", 3))
            .await
            .unwrap();
    }
    clock.advance(H_MS);
    let release = catalog
        .ledger
        .settle(settle("held", Decision::Release))
        .await
        .unwrap();
    assert_eq!(release, SettleOutcome::Unknown);
    assert_eq!(catalog.metrics.releases_refused.get(), 1);
    assert_eq!(quantity(&catalog.ledger, "Kite"), 94, "nothing came back");
    let kite = catalog
        .ledger
        .stock()
        .into_iter()
        .find(|toy| toy.name == "Kite")
        .unwrap();
    assert_eq!(kite.pending, 6, "both reservations are still pending");
    assert!(
        catalog
            .store
            .pending(0, u64::MAX, u64::MAX, 10)
            .unwrap()
            .iter()
            .any(|p| p.id == id("held"))
    );
    let confirm = catalog
        .ledger
        .settle(settle("sold", Decision::Confirm))
        .await
        .unwrap();
    assert_eq!(confirm, SettleOutcome::Confirmed);
    accounts_balance(&catalog.ledger, &[("Kite", 3)]);
    catalog.stop().await;
}

#[tokio::test]
async fn the_pending_listing_leaves_out_reservations_past_the_horizon() {
    let dir = TempDir::new().unwrap();
    let clock = ManualClock::new();
    let catalog = Running::start_on(&dir, 100, &clock);
    catalog
        .ledger
        .reserve(reservation("older", "Tux", 1))
        .await
        .unwrap();
    clock.advance(H_MS - 1);
    catalog
        .ledger
        .reserve(reservation("newer", "Tux", 1))
        .await
        .unwrap();
    let listed = |catalog: &Running| -> Vec<String> {
        catalog
            .ledger
            .pending(Duration::ZERO, 10)
            .unwrap()
            .into_iter()
            .map(|p| p.id.request_id)
            .collect()
    };
    assert_eq!(listed(&catalog), vec!["older", "newer"]);
    clock.advance(1);
    assert_eq!(listed(&catalog), vec!["newer"], "older is held, not listed");
    assert!(
        catalog
            .ledger
            .pending(Duration::from_millis(H_MS), 10)
            .unwrap()
            .is_empty(),
        "nothing is both H old and younger than H"
    );
    catalog.stop().await;
}

#[tokio::test]
async fn finished_records_are_forgotten_r_plus_h_after_they_finished() {
    let dir = TempDir::new().unwrap();
    let clock = ManualClock::new();
    let catalog = Running::start_on(&dir, 100, &clock);
    for request_id in ["confirmed", "released"] {
        catalog
            .ledger
            .reserve(reservation(request_id, "Frisbee", 1))
            .await
            .unwrap();
    }
    // They finish a while after they were made: the clock runs from the finish.
    clock.advance(1_000);
    catalog
        .ledger
        .settle(settle("confirmed", Decision::Confirm))
        .await
        .unwrap();
    catalog
        .ledger
        .settle(settle("released", Decision::Release))
        .await
        .unwrap();
    clock.advance(R_MS + H_MS - 1);
    assert_eq!(catalog.ledger.forget_due(100).unwrap(), 0);
    assert!(catalog.store.find(&id("confirmed")).unwrap().is_some());
    clock.advance(1);
    assert_eq!(catalog.ledger.forget_due(100).unwrap(), 2);
    assert!(catalog.store.find(&id("confirmed")).unwrap().is_none());
    assert!(catalog.store.find(&id("released")).unwrap().is_none());
    catalog.stop().await;
}

#[test]
fn the_retention_rule_in_numbers() {
    use crate::ledger::{SettleStep, answer_again, settle_step};
    use crate::store::{ReservationRecord, ReservationState};
    let retention = Retention::new(Duration::from_millis(R_MS));
    let made = 1_000;
    let young = made + H_MS - 1;
    let old = made + H_MS;
    let record = |state| ReservationRecord {
        name: "Tux".into(),
        quantity: 1,
        outcome: ReserveOutcome::Reserved {
            remaining: 9,
            version: 2,
        },
        state,
        made_ms: made,
    };
    let again = reservation("x", "Tux", 1);
    let other = reservation("x", "Tux", 2);
    use ReservationState::*;
    for now in [young, old] {
        assert_eq!(
            answer_again(&record(Confirmed), &again, now, retention).unwrap(),
            ReserveOutcome::Confirmed
        );
        assert_eq!(
            answer_again(&record(Released), &other, now, retention).unwrap(),
            ReserveOutcome::Released
        );
        assert_eq!(
            settle_step(Pending, made, Decision::Confirm, now, retention),
            SettleStep::Apply(Confirmed)
        );
    }
    assert!(matches!(
        answer_again(&record(Pending), &again, young, retention).unwrap(),
        ReserveOutcome::Reserved { .. }
    ));
    assert!(matches!(
        answer_again(&record(Pending), &other, young, retention),
        Err(CatalogError::RequestIdReused(_))
    ));
    assert_eq!(
        answer_again(&record(Pending), &other, old, retention).unwrap(),
        ReserveOutcome::Expired
    );
    assert_eq!(
        settle_step(Pending, made, Decision::Release, young, retention),
        SettleStep::Apply(Released)
    );
    assert_eq!(
        settle_step(Pending, made, Decision::Release, old, retention),
        SettleStep::RefuseRelease
    );
    assert_eq!(
        settle_step(Confirmed, made, Decision::Release, young, retention),
        SettleStep::Contradiction
    );
    assert_eq!(retention.forget_cutoff(made + R_MS + H_MS), made);
}

#[tokio::test]
async fn the_records_listing_pages_through_every_record_with_its_state_and_says_what_was_forgotten()
{
    use api::catalog::ReservationStatus;
    let dir = TempDir::new().unwrap();
    let clock = ManualClock::new();
    let catalog = Running::start_on(&dir, 3, &clock);
    for request_id in ["a-confirmed", "b-released", "c-pending", "d-refused"] {
        let quantity = if request_id == "d-refused" { 5 } else { 1 };
        catalog
            .ledger
            .reserve(reservation(request_id, "Frisbee", quantity))
            .await
            .unwrap();
    }
    catalog
        .ledger
        .settle(settle("a-confirmed", Decision::Confirm))
        .await
        .unwrap();
    catalog
        .ledger
        .settle(settle("b-released", Decision::Release))
        .await
        .unwrap();
    // Two records a page: the pages meet without a gap or an overlap.
    let first = catalog.ledger.records(None, 2).unwrap();
    let second = catalog.ledger.records(first.next.as_ref(), 2).unwrap();
    let last = catalog.ledger.records(second.next.as_ref(), 2).unwrap();
    assert!(last.records.is_empty() && last.next.is_none());
    let listed: Vec<_> = first
        .records
        .iter()
        .chain(&second.records)
        .map(|r| (r.id.request_id.as_str(), r.status, r.quantity))
        .collect();
    assert_eq!(
        listed,
        [
            ("a-confirmed", ReservationStatus::Confirmed, 1),
            ("b-released", ReservationStatus::Released, 1),
            ("c-pending", ReservationStatus::Pending, 1),
            ("d-refused", ReservationStatus::Refused, 5),
        ]
    );
    assert_eq!(first.forgotten_through_ms, None);
    // Past the retention the finished records go, and the listing says up to when.
    clock.advance(R_MS + H_MS);
    assert_eq!(catalog.ledger.forget_due(100).unwrap(), 3);
    let after = catalog.ledger.records(None, 10).unwrap();
    let left: Vec<_> = after
        .records
        .iter()
        .map(|r| r.id.request_id.as_str())
        .collect();
    assert_eq!(left, ["c-pending"]);
    assert!(after.forgotten_through_ms.is_some());
    catalog.stop().await;
}

/// Issue 25: a refusal (out of stock) is the answer for its id only for the refusal window,
/// then forgotten; other finished records keep their R + H.
#[tokio::test]
async fn a_refusal_is_kept_for_its_window_only() {
    let dir = TempDir::new().unwrap();
    let clock = ManualClock::new();
    let catalog = Running::start_on(&dir, 1, &clock);
    let window = crate::ledger::DEFAULT_REFUSAL_RETENTION.as_millis() as u64;
    assert!(window < R_MS + H_MS);
    // A sale that is confirmed: its record stays R + H.
    catalog
        .ledger
        .reserve(reservation("sold", "Tux", 1))
        .await
        .unwrap();
    catalog
        .ledger
        .settle(Settlement {
            id: id("sold"),
            decision: Decision::Confirm,
        })
        .await
        .unwrap();
    // Tux is out now: refused.
    let refused = catalog
        .ledger
        .reserve(reservation("refused", "Tux", 1))
        .await
        .unwrap();
    assert_eq!(refused, ReserveOutcome::OutOfStock { available: 0 });
    // Stock comes back; within the window the refusal still stands for its id.
    assert_eq!(
        catalog.ledger.restock().await.unwrap(),
        vec!["Tux".to_string()]
    );
    clock.advance(window - 1);
    assert_eq!(catalog.ledger.forget_due(100).unwrap(), 0);
    assert_eq!(
        catalog
            .ledger
            .reserve(reservation("refused", "Tux", 1))
            .await
            .unwrap(),
        ReserveOutcome::OutOfStock { available: 0 },
        "a retry within the window got another answer than its refusal"
    );
    // After the window: forgotten, and only the refusal.
    clock.advance(1);
    assert_eq!(catalog.ledger.forget_due(100).unwrap(), 1);
    assert!(catalog.store.find(&id("refused")).unwrap().is_none());
    assert!(catalog.store.find(&id("sold")).unwrap().is_some());
    // The id is new again: with stock back, it reserves.
    assert!(matches!(
        catalog
            .ledger
            .reserve(reservation("refused", "Tux", 1))
            .await
            .unwrap(),
        ReserveOutcome::Reserved { .. }
    ));
    // The confirmed record goes at R + H, as before.
    clock.advance(R_MS + H_MS);
    assert!(catalog.ledger.forget_due(100).unwrap() >= 1);
    assert!(catalog.store.find(&id("sold")).unwrap().is_none());
    catalog.stop().await;
}
