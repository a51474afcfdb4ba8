//! Catalog and front-end together: the cached product path.

use api::catalog::{Product, Reservation, ReservationBatch, ReservationId, ReserveOutcome};
use api::frontend::routes;
use system_tests::store::{StoreOptions, TestStore};

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
