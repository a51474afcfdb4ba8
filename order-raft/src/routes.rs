//! The replica's HTTP API: orders, order queries, the front-end's selection, status, and (when
//! enabled) fault injection. The Raft RPC endpoints live in [`crate::network`].

use std::sync::Arc;

use api::ApiError;
use api::cli::ClusterToken;
use api::envelope::{ApiResult, Data};
use api::order::{
    Hop, MAX_LOCAL_ORDERS, MAX_ORDER_BATCH, MAX_ORDER_BATCH_BODY, OrderPlaced, OrderRecord,
    PlaceOrder, PlaceOrders, PlacedAnswers, ReplicaOrder, Selection, check_order,
    parse_order_number, routes,
};
use api::server::{JsonBody, PathParam, require_cluster_token};
use api::status::NodeStatus;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::HeaderMap;
use axum::middleware;
use axum::routing::{MethodRouter, get, post};
use serde::Deserialize;

use crate::error::OrderError;
use crate::network;
use crate::node::OrderNode;

pub fn router(node: Arc<OrderNode>, token: Option<ClusterToken>, fault_injection: bool) -> Router {
    let mut internal = Router::new()
        .route(routes::ORDERS, post(place_order))
        .route(
            routes::ORDERS_BATCH,
            post(place_orders).layer(DefaultBodyLimit::max(MAX_ORDER_BATCH_BODY)),
        )
        .route(routes::ORDER, get(lookup_order))
        .route(routes::SELECTION, post(replica_selected))
        .route(routes::LOCAL_ORDERS, get(local_orders));
    if fault_injection {
        internal = internal.route(routes::FAULTS, post(arm_fault));
    }
    let internal = internal
        .with_state(node.clone())
        .merge(network::router(node.clone()))
        .route_layer(middleware::from_fn_with_state(token, require_cluster_token));
    Router::new()
        .route(routes::STATUS, get(status))
        .with_state(node)
        .merge(internal)
}

async fn status(State(node): State<Arc<OrderNode>>) -> Data<NodeStatus> {
    Data::new(node.status())
}

/// `GET /health`: 200 when this replica can serve orders now, else 503 with the reason (see
/// [`crate::health`]).
pub fn health(node: Arc<OrderNode>) -> MethodRouter {
    get(|State(node): State<Arc<OrderNode>>| async move {
        match node.readiness.check() {
            Ok(()) => Ok(Data::new("ok")),
            Err(why) => Err(ApiError::unavailable(why.reason())),
        }
    })
    .with_state(node)
}

async fn place_order(
    State(node): State<Arc<OrderNode>>,
    headers: HeaderMap,
    JsonBody(order): JsonBody<PlaceOrder>,
) -> ApiResult<OrderPlaced> {
    check_order(&order.name, u64::from(order.quantity))?;
    let placed = node
        .place(order, Hop::from_headers(&headers))
        .await
        .map_err(ApiError::from)?;
    Ok(Data::new(placed))
}

async fn place_orders(
    State(node): State<Arc<OrderNode>>,
    headers: HeaderMap,
    JsonBody(batch): JsonBody<PlaceOrders>,
) -> ApiResult<PlacedAnswers> {
    if batch.orders.len() > MAX_ORDER_BATCH {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_ORDER_BATCH} orders per batch"
        )));
    }
    let hop = Hop::from_headers(&headers);
    // An order out of bounds is refused alone, before it reaches the catalog or the log; the
    // others of its batch go on.
    let answers = futures::future::join_all(batch.orders.into_iter().map(|order| {
        let node = &node;
        async move {
            check_order(&order.name, u64::from(order.quantity))?;
            node.place(order, hop).await.map_err(ApiError::from)
        }
    }))
    .await
    .into_iter()
    .map(|answer| answer.map_err(|err| err.detail()))
    .collect();
    Ok(Data::new(answers))
}

async fn lookup_order(
    State(node): State<Arc<OrderNode>>,
    headers: HeaderMap,
    PathParam(number): PathParam<String>,
) -> ApiResult<OrderRecord> {
    let number = parse_order_number(&number)?;
    let order = node
        .lookup(number, Hop::from_headers(&headers))
        .await
        .map_err(ApiError::from)?;
    Ok(Data::new(order))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalOrdersQuery {
    #[serde(default)]
    from: u64,
    #[serde(default = "max_local_orders")]
    limit: usize,
}

fn max_local_orders() -> usize {
    MAX_LOCAL_ORDERS
}

/// `GET /replica/orders`: this replica's orders as it holds them, for checkers.
async fn local_orders(
    State(node): State<Arc<OrderNode>>,
    query: Result<Query<LocalOrdersQuery>, QueryRejection>,
) -> ApiResult<Vec<ReplicaOrder>> {
    let Query(query) = query.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let reader = node.reader.clone();
    let limit = query.limit.min(MAX_LOCAL_ORDERS);
    let orders = tokio::task::spawn_blocking(move || reader.orders(query.from, limit))
        .await
        .map_err(|err| ApiError::internal(err.to_string()))?
        .map_err(|err| ApiError::from(OrderError::from(err)))?;
    Ok(Data::new(
        orders
            .into_iter()
            .map(|order| ReplicaOrder {
                number: order.number,
                request_id: order.request_id,
                attempt: order.attempt,
                name: order.name,
                quantity: order.quantity,
            })
            .collect(),
    ))
}

async fn replica_selected(
    State(node): State<Arc<OrderNode>>,
    JsonBody(selection): JsonBody<Selection>,
) -> Data<&'static str> {
    node.record_selection(selection.replica_id);
    Data::new("ok")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    /// Abort the process after the catalog reservation of the order with this request id.
    #[serde(default)]
    crash_after_reserve: Option<String>,
    /// Stop the Raft core now, as a fatal storage error would.
    #[serde(default)]
    stop_raft: bool,
}

async fn arm_fault(
    State(node): State<Arc<OrderNode>>,
    JsonBody(fault): JsonBody<FaultRequest>,
) -> Data<&'static str> {
    if let Some(request_id) = fault.crash_after_reserve {
        tracing::warn!(%request_id, "fault armed: crash after the catalog reservation");
        node.faults.arm_crash_after_reserve(request_id);
    }
    if fault.stop_raft {
        tracing::warn!("fault injected: stopping the Raft core");
        if let Err(err) = node.raft.shutdown().await {
            tracing::warn!(%err, "the Raft core did not stop cleanly");
        }
    }
    Data::new("armed")
}
