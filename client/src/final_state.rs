//! The store's final state for `toystore-check`: every replica's orders as it holds them, the
//! catalog's stock accounts and every reservation record it holds (with its state, and up to
//! when it has forgotten finished ones), read once the store has settled.
//!
//! "Settled" means every reservation is confirmed or released (the catalog reports nothing
//! pending) and every replica has applied the same entries (same applied index and digest).
//! Both are waited for, up to a deadline; a state taken before that is still written, and the
//! checker then reports what did not settle.

use std::time::Duration;

use api::catalog::{CatalogClient, ReservationStatus as Status};
use api::client::{CallError, ServiceClient};
use api::cluster::NodeAddrs;
use api::order::ReplicaClient;
use checker::state::{
    CatalogState, FinalState, Replica, Reservation, ReservationStatus, StoredOrder, ToyStock,
};
use tokio::time::Instant;

/// Every order one replica holds, in number order.
async fn local_orders(replica: &ReplicaClient) -> Result<Vec<StoredOrder>, CallError> {
    Ok(replica
        .all_local_orders()
        .await?
        .into_iter()
        .map(|order| StoredOrder {
            number: order.number,
            request_id: Some(order.request_id),
            name: order.name,
            quantity: order.quantity,
            attempt: Some(order.attempt),
        })
        .collect())
}

/// What the store looks like once it has settled (or `wait` ran out).
pub async fn collect(
    replicas: &NodeAddrs,
    catalog: &CatalogClient,
    http: &ServiceClient,
    wait: Duration,
) -> Result<FinalState, CallError> {
    let deadline = Instant::now() + wait;
    let clients = ReplicaClient::all(replicas, http);
    loop {
        let pending: u64 = match catalog.stock().await {
            Ok(stock) => stock.iter().map(|toy| toy.pending).sum(),
            Err(_) => u64::MAX,
        };
        let mut seen = Vec::new();
        for replica in clients.values() {
            seen.push(
                replica
                    .status()
                    .await
                    .ok()
                    .map(|s| (s.applied_index, s.digest)),
            );
        }
        let converged = seen.iter().all(|s| s.is_some() && *s == seen[0]);
        if (pending == 0 && converged) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut state = FinalState {
        replicas: Vec::new(),
        catalog: CatalogState {
            toys: Vec::new(),
            reservations: None,
            forgotten_through_ms: None,
        },
    };
    for (&id, replica) in &clients {
        state.replicas.push(Replica {
            id,
            orders: local_orders(replica).await?,
        });
    }
    state.catalog.toys = catalog
        .stock()
        .await?
        .into_iter()
        .map(|toy| ToyStock {
            name: toy.name,
            initial: toy.initial,
            restocked: toy.restocked,
            quantity: i64::from(toy.quantity),
            pending: i64::try_from(toy.pending).unwrap_or(i64::MAX),
        })
        .collect();
    // After the orders: a record forgotten meanwhile is covered by `forgotten_through_ms`,
    // which is read after the last page.
    let records = catalog.all_reservation_records().await?;
    state.catalog.forgotten_through_ms = records.forgotten_through_ms.map(|ms| ms as f64);
    state.catalog.reservations = Some(
        records
            .records
            .into_iter()
            .map(|record| Reservation {
                request_id: record.id.request_id,
                attempt: record.id.attempt,
                name: record.name,
                quantity: record.quantity,
                status: match record.status {
                    Status::Pending => ReservationStatus::Pending,
                    Status::Confirmed => ReservationStatus::Confirmed,
                    Status::Released => ReservationStatus::Released,
                    Status::Refused => ReservationStatus::Refused,
                },
            })
            .collect(),
    );
    Ok(state)
}
