//! HTTP handlers: the public API, the catalog's invalidation endpoint, and status.

use std::sync::Arc;

use api::ApiError;
use api::catalog::{Invalidation, Product, VersionedProduct};
use api::envelope::{ApiResult, Data};
use api::order::{
    CacheStatus, FrontendStatus, IDEMPOTENCY_KEY, OrderPlaced, OrderRecord, OrderRequest,
    PlaceOrder, REQUEST_ID_RULE, parse_order_number, valid_request_id,
};
use api::server::{JsonBody, PathParam, require_cluster_token};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;

use crate::AppState;
use crate::error::FrontendError;

pub fn router(state: AppState, token: Option<Arc<str>>) -> Router {
    let internal = Router::new()
        .route("/invalidate", post(invalidate))
        .route_layer(middleware::from_fn_with_state(token, require_cluster_token));
    Router::new()
        .route("/status", get(status))
        .route("/products", get(products))
        .route("/products/{name}", get(product))
        .route("/orders", post(place_order))
        .route("/orders/{number}", get(lookup_order))
        .merge(internal)
        .with_state(state)
}

async fn status(State(state): State<AppState>) -> Data<FrontendStatus> {
    let cache = &state.cache;
    let metrics = cache.metrics();
    Data::new(FrontendStatus {
        selected_leader: state.orders.selector().selected(),
        reselections: state.orders.selector().reselections(),
        cache: CacheStatus {
            capacity: cache.capacity(),
            entries: cache.len(),
            hits: metrics.hits.get(),
            misses: metrics.misses.get(),
            evictions: metrics.evictions.get(),
            invalidations: metrics.invalidations.get(),
            lease_valid: cache.lease_live(),
        },
    })
}

async fn products(State(state): State<AppState>) -> ApiResult<Vec<Product>> {
    let url = state.catalog_endpoint(&["products"]);
    let toys: Vec<VersionedProduct> = state
        .client
        .call(state.client.get(url.as_str()))
        .await
        .map_err(|e| ApiError::from(FrontendError::from_catalog(e)))?;
    Ok(Data::new(
        toys.iter().map(VersionedProduct::public).collect(),
    ))
}

/// Served from the cache when possible; a miss costs exactly one catalog round trip.
async fn product(State(state): State<AppState>, PathParam(name): PathParam<String>) -> Response {
    if let Some(body) = state.cache.get(&name) {
        return json_body(body);
    }
    let ticket = state.cache.ticket();
    let url = state.catalog_endpoint(&["products", &name]);
    let toy: VersionedProduct = match state.client.call(state.client.get(url.as_str())).await {
        Ok(toy) => toy,
        Err(err) => return ApiError::from(FrontendError::from_catalog(err)).into_response(),
    };
    let body = match serde_json::to_vec(&Data::new(toy.public())) {
        Ok(body) => Bytes::from(body),
        Err(err) => return ApiError::internal(format!("cannot encode: {err}")).into_response(),
    };
    state.cache.fill(ticket, &name, toy.version, body.clone());
    json_body(body)
}

fn json_body(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn place_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(order): JsonBody<OrderRequest>,
) -> ApiResult<OrderPlaced> {
    let quantity = u32::try_from(order.quantity)
        .ok()
        .filter(|q| *q >= 1)
        .ok_or_else(|| {
            ApiError::bad_request("quantity must be a whole number from 1 to 4294967295")
        })?;
    let request_id = match headers.get(IDEMPOTENCY_KEY) {
        Some(key) => key
            .to_str()
            .ok()
            .filter(|key| valid_request_id(key))
            .ok_or_else(|| ApiError::bad_request(REQUEST_ID_RULE))?
            .to_string(),
        None => uuid::Uuid::new_v4().to_string(),
    };
    tracing::debug!(%request_id, name = %order.name, quantity, "placing order");
    let placed = state
        .orders
        .place(PlaceOrder {
            request_id,
            name: order.name,
            quantity,
        })
        .await
        .map_err(ApiError::from)?;
    Ok(Data::new(placed))
}

async fn lookup_order(
    State(state): State<AppState>,
    PathParam(number): PathParam<String>,
) -> ApiResult<OrderRecord> {
    let number = parse_order_number(&number)?;
    let order = state.orders.lookup(number).await.map_err(ApiError::from)?;
    Ok(Data::new(order))
}

async fn invalidate(
    State(state): State<AppState>,
    JsonBody(invalidation): JsonBody<Invalidation>,
) -> Data<&'static str> {
    for toy in &invalidation.toys {
        state.cache.invalidate(&toy.name, toy.version);
    }
    Data::new("ok")
}
