//! Catalog unit tests: the ledger against a real RocksDB in a temporary directory, and the
//! invalidation push against a real HTTP endpoint standing in for a front-end.

use std::sync::Arc;
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
use crate::ledger::Ledger;
use crate::metrics::CatalogMetrics;
use crate::store::StockStore;

struct Running {
    ledger: Ledger,
    leases: Arc<CacheLeases>,
    stop: CancellationToken,
    writer: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(dir: &TempDir, stock: u32, lease: Duration) -> Self {
        let store = Arc::new(StockStore::open(dir.path(), stock).expect("store opens"));
        let client = ServiceClient::new(Duration::from_millis(300), None);
        let leases = Arc::new(CacheLeases::new(
            lease,
            client,
            Counter::default(),
            Counter::default(),
        ));
        let stop = CancellationToken::new();
        let (ledger, writer) = Ledger::start(
            store,
            leases.clone(),
            CatalogMetrics::default(),
            Instant::now(),
            stop.clone(),
        )
        .expect("ledger starts");
        Self {
            ledger,
            leases,
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
    assert!(catalog.leases.grant(url).fresh);

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
    catalog.leases.grant(dead.clone());
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
        catalog.leases.grant(dead).fresh,
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
    catalog.leases.grant(url);

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
    let catalog = Running::start(&dir, 4, Duration::from_secs(1));
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

    // A long retention keeps the record: a retry gets the same answer.
    assert_eq!(
        catalog
            .ledger
            .forget_older_than(Duration::from_secs(3600), 100)
            .unwrap(),
        0
    );
    assert!(matches!(
        catalog
            .ledger
            .reserve(reservation("all", "Yo-Yo", 4))
            .await
            .unwrap(),
        ReserveOutcome::Reserved { .. }
    ));
    assert_eq!(
        quantity(&catalog.ledger, "Yo-Yo"),
        4,
        "the retry took nothing"
    );
    // Past the retention it is forgotten; a pending reservation never is.
    catalog
        .ledger
        .reserve(reservation("open", "Tux", 1))
        .await
        .unwrap();
    assert_eq!(
        catalog
            .ledger
            .forget_older_than(Duration::ZERO, 100)
            .unwrap(),
        1
    );
    assert_eq!(catalog.ledger.pending(Duration::ZERO, 10).unwrap().len(), 1);
    catalog.stop().await;
}
