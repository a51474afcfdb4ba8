//! A catalog restarting on its data while front-ends still cache under its predecessor's
//! leases (issue 20, finding 3): it tells every front-end it can reach to start fresh and
//! waits out the lease only of a known front-end it cannot reach.

use std::net::SocketAddr;
use std::time::Duration;

use api::cache_lease::LeaseRequest;
use api::catalog::{CatalogClient, Reservation, ReservationBatch, ReservationId, ReserveOutcome};
use api::server::ServerHandle;
use api::url::parse_base_url;
use system_tests::{
    free_port, http, init_logs, metric, metrics_text, start_lone_frontend, wait_for,
};

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

/// A catalog on a fixed port (so that front-ends find it again after the restart).
fn catalog_config(dir: &std::path::Path, port: u16) -> catalog::Config {
    let mut config = catalog::Config::for_test(dir.join("catalog"));
    config.listen = SocketAddr::from(([127, 0, 0, 1], port));
    config.lease = Duration::from_secs(2);
    config
}

/// Starts the catalog again on its data and port, once the previous one has let go of both.
async fn restart(config: &catalog::Config) -> ServerHandle {
    wait_for(
        "the catalog to reopen its data",
        Duration::from_secs(20),
        || {
            let config = config.clone();
            async move { catalog::serve(config).await.ok() }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_catalog_resets_a_reachable_front_end_instead_of_waiting_a_lease() {
    init_logs();
    let dir = tempfile::TempDir::new().expect("a temporary directory");
    let config = catalog_config(dir.path(), free_port());
    let server = catalog::serve(config.clone())
        .await
        .expect("catalog starts");
    let catalog_url = parse_base_url(&server.url()).expect("a catalog URL");
    let catalog = CatalogClient::new(catalog_url.clone(), http());
    let (frontend_server, frontend) = start_lone_frontend(&catalog_url).await;
    // The front-end caches Lego under the first catalog's lease.
    let cached = frontend
        .product("Lego")
        .await
        .expect("the front-end answers");
    let _ = server.shutdown().await;

    let server = restart(&config).await;
    // Reported, not asserted: how long the first change waited after the catalog was up.
    let up = std::time::Instant::now();
    let answer = catalog
        .reserve(&one_reservation("after-restart", "Lego", 2), None)
        .await
        .expect("the restarted catalog answers")
        .remove(0)
        .expect("the reservation is answered");
    eprintln!(
        "first reservation acknowledged {:?} after the restarted catalog was up",
        up.elapsed()
    );
    let ReserveOutcome::Reserved { remaining, .. } = answer else {
        panic!("expected a reservation, got {answer:?}");
    };
    assert_eq!(remaining, cached.quantity - 2);
    let text = metrics_text(&catalog_url).await;
    assert_eq!(
        metric(&text, "catalog_restart_frontends_reset"),
        Some(1),
        "the known front-end was told to start fresh:\n{text}"
    );
    assert_eq!(
        metric(&text, "catalog_restart_frontends_waited"),
        Some(0),
        "no lease had to be waited out:\n{text}"
    );
    let seen = frontend
        .product("Lego")
        .await
        .expect("the front-end answers");
    assert_eq!(
        seen.quantity, remaining,
        "the front-end shows the new stock"
    );
    let _ = frontend_server.shutdown().await;
    let _ = server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_catalog_waits_out_the_lease_of_a_known_front_end_it_cannot_reach() {
    init_logs();
    let dir = tempfile::TempDir::new().expect("a temporary directory");
    let config = catalog_config(dir.path(), free_port());
    let server = catalog::serve(config.clone())
        .await
        .expect("catalog starts");
    let catalog_url = parse_base_url(&server.url()).expect("a catalog URL");
    let catalog = CatalogClient::new(catalog_url.clone(), http());
    // A front-end that registered and then vanished: nothing listens on its port.
    let gone = format!("http://127.0.0.1:{}", free_port());
    catalog
        .renew_lease(&LeaseRequest {
            url: gone,
            epoch: None,
        })
        .await
        .expect("the front-end registers");
    let _ = server.shutdown().await;

    let server = restart(&config).await;
    let answer = catalog
        .reserve(&one_reservation("after-restart", "Kite", 1), None)
        .await
        .expect("the restarted catalog answers")
        .remove(0)
        .expect("the reservation is answered");
    assert!(matches!(answer, ReserveOutcome::Reserved { .. }));
    let text = metrics_text(&catalog_url).await;
    assert_eq!(
        metric(&text, "catalog_restart_frontends_waited"),
        Some(1),
        "the unreachable front-end's lease was waited out:\n{text}"
    );
    assert_eq!(metric(&text, "catalog_restart_frontends_reset"), Some(0));
    let _ = server.shutdown().await;
}
