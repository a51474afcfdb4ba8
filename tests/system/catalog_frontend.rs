//! Catalog and front-end together: the cached product path, and a front-end that registers
//! while a stock change is on its way to the disk.

use std::time::Duration;

use api::cache_lease::LeaseRequest;
use api::catalog::{
    CatalogClient, Product, Reservation, ReservationBatch, ReservationId, ReserveOutcome,
};
use api::frontend::routes;
use api::url::parse_base_url;
use system_tests::store::{StoreOptions, TestStore};
use system_tests::{http, init_logs, start_lone_frontend};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_toy_is_cached_after_one_query_and_a_buy_shows_at_once() {
    let store = TestStore::start(StoreOptions {
        initial_stock: 100,
        frontend: true,
        ..Default::default()
    })
    .await;
    // The cache is used only under a lease from the catalog.
    store.wait_for_cache_lease().await;

    let toys: Vec<Product> = store.frontend().products().await.unwrap();
    assert!(toys.len() >= 15, "the catalog has at least 15 toys");
    let capacity = store.frontend_status().await.cache.capacity;
    assert!(
        capacity < toys.len(),
        "the default cache is smaller than the catalog"
    );

    // Query each toy twice in a row: the second read of each is a hit.
    for toy in &toys {
        for _ in 0..2 {
            let seen = store.frontend().product(&toy.name).await.unwrap();
            assert_eq!(&seen, toy);
        }
    }
    let status = store.frontend_status().await;
    assert_eq!(status.cache.hits, toys.len() as u64);
    assert_eq!(status.cache.misses, toys.len() as u64);
    assert_eq!(status.cache.entries, capacity);
    assert_eq!(status.cache.evictions, (toys.len() - capacity) as u64);

    // The most recently read toy is cached; reserve some of it at the catalog directly.
    let toy = &toys[toys.len() - 1];
    let reservation = Reservation {
        id: ReservationId {
            request_id: "catalog-direct-1".into(),
            attempt: 0,
        },
        name: toy.name.clone(),
        quantity: 4,
    };
    let batch = ReservationBatch {
        reservations: vec![reservation],
    };
    let outcome = store.catalog.reserve(&batch, None).await.unwrap().remove(0);
    assert!(matches!(
        outcome,
        Ok(ReserveOutcome::Reserved { remaining: 96, .. })
    ));
    // Acknowledged means invalidated: the very next front-end read shows the new quantity.
    let seen = store.frontend().product(&toy.name).await.unwrap();
    assert_eq!(seen.quantity, 96);
    assert!(store.frontend_status().await.cache.invalidations >= 1);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_error_envelope() {
    let store = TestStore::start(StoreOptions {
        frontend: true,
        ..Default::default()
    })
    .await;
    let frontend = store.frontend();
    let orders = frontend.url(routes::ORDERS, &[]);
    let raw = reqwest::Client::new();
    let cases: Vec<(reqwest::RequestBuilder, u16)> = vec![
        (
            raw.get(frontend.url(routes::PRODUCT, &["No Such Toy"])),
            404,
        ),
        (raw.get(frontend.url("/no/such/route", &[])), 404),
        (raw.delete(frontend.url(routes::ORDER, &["1"])), 405),
        (raw.get(frontend.url(routes::ORDER, &["minus-one"])), 400),
        (
            raw.post(orders.clone())
                .header("content-type", "application/json")
                .body("{\"name\":"),
            400,
        ),
        (
            raw.post(orders.clone())
                .json(&serde_json::json!({"name": "Tux"})),
            400,
        ),
        (
            raw.post(orders.clone())
                .json(&serde_json::json!({"name": "Tux", "quantity": 0})),
            400,
        ),
        (
            raw.post(orders.clone())
                .json(&serde_json::json!({"name": "Tux", "quantity": -3})),
            400,
        ),
        (
            raw.post(orders.clone())
                .body("{\"name\":\"Tux\",\"quantity\":1}"),
            415,
        ),
        (
            raw.post(orders.clone())
                .header("content-type", "application/json")
                .body(vec![b' '; 20_000]),
            413,
        ),
        (
            raw.post(orders.clone())
                .header("idempotency-key", "has spaces")
                .json(&serde_json::json!({"name": "Tux", "quantity": 1})),
            400,
        ),
        (
            raw.post(frontend.url(routes::INVALIDATE, &[]))
                .json(&serde_json::json!({"toys": 5})),
            400,
        ),
    ];
    for (request, expected) in cases {
        let response = request.send().await.expect("the front-end answers");
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.expect("a JSON body");
        assert_eq!(status, expected, "body: {body}");
        assert_eq!(body["error"]["code"], expected, "body: {body}");
        assert!(body["error"]["reason"].is_string(), "body: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // Nothing was bought by any of that.
    assert_eq!(store.product("Tux").await.quantity, 100_000);
    store.shutdown().await;
}

fn one_reservation(request_id: &str, name: &str, quantity: u32) -> ReservationBatch {
    ReservationBatch {
        reservations: vec![Reservation {
            id: ReservationId {
                request_id: request_id.into(),
                attempt: 0,
            },
            name: name.into(),
            quantity,
        }],
    }
}

/// Issue 20, finding 1 (read-your-writes): a front-end registers while a stock change is in
/// flight (its invalidation targets were fixed before the registration, and readers do not
/// see it yet). Its first query fills the cache from the old stock; once the change is
/// acknowledged, the front-end must not serve that fill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_front_end_that_registers_while_a_change_is_in_flight_never_serves_the_old_stock() {
    init_logs();
    let dir = tempfile::TempDir::new().expect("a temporary directory");
    let mut config = catalog::Config::for_test(dir.path().join("catalog"));
    config.lease = Duration::from_secs(2);
    // The stuck front-end below holds the push until the test lets it go.
    config.push_timeout = Duration::from_secs(60);
    let catalog_server = catalog::serve(config).await.expect("catalog starts");
    let catalog_url = parse_base_url(&catalog_server.url()).expect("a catalog URL");
    let catalog = CatalogClient::new(catalog_url.clone(), http());

    // A front-end that takes the invalidation's connection and never answers: the change
    // stays in flight (pushed, not yet visible) until the test drops it.
    let stuck = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let stuck_url = format!("http://{}", stuck.local_addr().expect("an address"));
    catalog
        .renew_lease(&LeaseRequest {
            url: stuck_url,
            epoch: None,
        })
        .await
        .expect("the stuck front-end registers");
    let (accepted, push_arrived) = tokio::sync::oneshot::channel();
    let stuck_task = tokio::spawn(async move {
        if let Ok((socket, _)) = stuck.accept().await {
            let _ = accepted.send(());
            let _keep = (socket, stuck);
            std::future::pending::<()>().await;
        }
    });
    let before = catalog.product("Lego").await.expect("the catalog answers");
    let reserve = tokio::spawn({
        let catalog = catalog.clone();
        async move {
            catalog
                .reserve(&one_reservation("in-flight-1", "Lego", 3), None)
                .await
        }
    });
    tokio::time::timeout(Duration::from_secs(10), push_arrived)
        .await
        .expect("the invalidation reaches the stuck front-end")
        .expect("the stuck front-end is still there");

    // Now a front-end registers: after the push targets were fixed, before the change is
    // visible.
    let (frontend_server, frontend) = start_lone_frontend(&catalog_url).await;
    let early = frontend
        .product("Lego")
        .await
        .expect("the front-end answers");
    assert_eq!(
        early.quantity, before.quantity,
        "the change is not acknowledged yet"
    );

    // Let the change finish: the push fails, the stuck front-end's lease is waited out, the
    // reservation is acknowledged.
    stuck_task.abort();
    let answer = reserve
        .await
        .expect("the reservation task ends")
        .expect("the catalog answers")
        .remove(0)
        .expect("the reservation is answered");
    let ReserveOutcome::Reserved { remaining, .. } = answer else {
        panic!("expected a reservation, got {answer:?}");
    };
    let after = frontend
        .product("Lego")
        .await
        .expect("the front-end answers");
    assert_eq!(
        after.quantity, remaining,
        "the reservation was acknowledged, yet the front-end serves the stock from before it"
    );
    let _ = frontend_server.shutdown().await;
    let _ = catalog_server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_server_error_names_its_request_id_and_nothing_internal() {
    init_logs();
    // A front-end whose catalog and replica addresses lead nowhere: every product query fails
    // inside the store, with a connection error that names the catalog's address.
    let nowhere = |port: u16| parse_base_url(&format!("http://127.0.0.1:{port}")).expect("a URL");
    let catalog = nowhere(system_tests::free_port());
    let nodes = api::cluster::NodeAddrs::new([(1, nowhere(system_tests::free_port()))]);
    let server = frontend::serve(frontend::Config::for_test(catalog.clone(), nodes))
        .await
        .expect("front-end starts");
    let response = reqwest::Client::new()
        .get(format!("{}/products/Tux", server.url()))
        .header(api::defaults::REQUEST_ID_HEADER, "probe-503")
        .send()
        .await
        .expect("the front-end answers");
    assert_eq!(response.status().as_u16(), 503);
    let body: serde_json::Value = response.json().await.expect("a JSON body");
    let error = &body["error"];
    assert_eq!(error["reason"], "unavailable", "{body}");
    assert_eq!(error["request_id"], "probe-503", "{body}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        !message.contains("127.0.0.1")
            && !message.contains(&catalog.port().unwrap_or(0).to_string()),
        "the catalog's address leaked into a public answer: {body}"
    );
    server.shutdown().await.expect("the front-end stops");
}
