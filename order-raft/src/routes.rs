//! The replica's HTTP API: orders, order queries, the front-end's selection, status, and (when
//! enabled) fault injection. The Raft RPC endpoints live in [`crate::network`].

use std::sync::Arc;

use api::ApiError;
use api::envelope::{ApiResult, Data};
use api::order::{
    LeaderNotice, NodeStatus, OrderPlaced, OrderRecord, PlaceOrder, parse_order_number,
};
use api::server::{JsonBody, PathParam, require_cluster_token};
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::middleware;
use axum::routing::{get, post};
use serde::Deserialize;

use crate::network;
use crate::node::{FORWARDED_BY, OrderNode};

pub fn router(node: Arc<OrderNode>, token: Option<Arc<str>>, fault_injection: bool) -> Router {
    let mut internal = Router::new()
        .route("/orders", post(place_order))
        .route("/orders/{number}", get(lookup_order))
        .route("/leader", post(leader_selected));
    if fault_injection {
        internal = internal.route("/faults", post(arm_fault));
    }
    let internal = internal
        .with_state(node.clone())
        .merge(network::router(node.clone()))
        .route_layer(middleware::from_fn_with_state(token, require_cluster_token));
    Router::new()
        .route("/status", get(status))
        .with_state(node)
        .merge(internal)
}

async fn status(State(node): State<Arc<OrderNode>>) -> Data<NodeStatus> {
    Data::new(node.status())
}

fn forwarded(headers: &HeaderMap) -> bool {
    headers.contains_key(FORWARDED_BY)
}

async fn place_order(
    State(node): State<Arc<OrderNode>>,
    headers: HeaderMap,
    JsonBody(order): JsonBody<PlaceOrder>,
) -> ApiResult<OrderPlaced> {
    let placed = node
        .place(order, forwarded(&headers))
        .await
        .map_err(ApiError::from)?;
    Ok(Data::new(placed))
}

async fn lookup_order(
    State(node): State<Arc<OrderNode>>,
    headers: HeaderMap,
    PathParam(number): PathParam<String>,
) -> ApiResult<OrderRecord> {
    let number = parse_order_number(&number)?;
    let order = node
        .lookup(number, forwarded(&headers))
        .await
        .map_err(ApiError::from)?;
    Ok(Data::new(order))
}

async fn leader_selected(
    State(node): State<Arc<OrderNode>>,
    JsonBody(notice): JsonBody<LeaderNotice>,
) -> Data<&'static str> {
    node.record_selection(notice.leader_id);
    Data::new("ok")
}

#[derive(Deserialize)]
struct FaultRequest {
    /// Abort the process after the catalog buy of the order with this request id.
    crash_after_buy: String,
}

async fn arm_fault(
    State(node): State<Arc<OrderNode>>,
    JsonBody(fault): JsonBody<FaultRequest>,
) -> Data<&'static str> {
    tracing::warn!(request_id = %fault.crash_after_buy, "fault armed: crash after the catalog buy");
    node.faults.arm_crash_after_buy(fault.crash_after_buy);
    Data::new("armed")
}
