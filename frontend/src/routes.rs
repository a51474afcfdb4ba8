//! HTTP handlers: the public API, the catalog's invalidation endpoint, and status. Each one
//! validates its input and hands the work to a module ([`crate::products`],
//! [`crate::orders`], [`crate::cache`]).

use std::sync::Arc;

use api::ApiError;
use api::cache_lease::Invalidation;
use api::catalog::Product;
use api::envelope::{ApiResult, Data};
use api::frontend::{IDEMPOTENCY_KEY, OrderRequest, routes};
use api::order::{
    OrderPlaced, OrderRecord, PlaceOrder, REQUEST_ID_RULE, parse_order_number, valid_request_id,
};
use api::server::{JsonBody, PathParam, require_cluster_token};
use api::status::{CacheStatus, FrontendStatus};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;

use crate::AppState;

pub fn router(state: AppState, token: Option<Arc<str>>) -> Router {
    let internal = Router::new()
        .route(routes::INVALIDATE, post(invalidate))
        .route_layer(middleware::from_fn_with_state(token, require_cluster_token));
    Router::new()
        .route(routes::STATUS, get(status))
        .route(routes::PRODUCTS, get(products))
        .route(routes::PRODUCT, get(product))
        .route(routes::ORDERS, post(place_order))
        .route(routes::ORDER, get(lookup_order))
        .merge(internal)
        .with_state(state)
}

async fn status(State(state): State<AppState>) -> Data<FrontendStatus> {
    let cache = &state.cache;
    let metrics = cache.metrics();
    let selector = state.orders.selector();
    Data::new(FrontendStatus {
        selected_replica: selector.selected(),
        reselections: selector.reselections(),
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
    Ok(Data::new(state.products.products().await?))
}

/// Served from the cache when possible; a miss costs exactly one catalog round trip. The
/// `ETag` is the version of the toy's stock the answer shows.
async fn product(State(state): State<AppState>, PathParam(name): PathParam<String>) -> Response {
    match state.products.product(&name).await {
        Ok((body, etag)) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (header::ETAG, etag),
            ],
            body,
        )
            .into_response(),
        Err(err) => ApiError::from(err).into_response(),
    }
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
            name: order.name.clone(),
            quantity,
        })
        .await?;
    // Committed: the record can be read back from here on, by anyone.
    let record = OrderRecord {
        number: placed.order_number,
        name: order.name,
        quantity,
    };
    remember(&state, &record);
    Ok(Data::new(placed))
}

/// From the cache of committed orders when possible, else a linearizable read from a replica.
async fn lookup_order(
    State(state): State<AppState>,
    PathParam(number): PathParam<String>,
) -> Response {
    let number = match parse_order_number(&number) {
        Ok(number) => number,
        Err(err) => return err.into_response(),
    };
    if let Some(body) = state.order_cache.get(number) {
        return json_body(body);
    }
    match state.orders.lookup(number).await {
        Ok(record) => match remember(&state, &record) {
            Some(body) => json_body(body),
            None => Data::new(record).into_response(),
        },
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// Caches a committed order's answer body; returns it.
fn remember(state: &AppState, record: &OrderRecord) -> Option<Bytes> {
    let body = Bytes::from(serde_json::to_vec(&Data::new(record)).ok()?);
    state.order_cache.insert(record.number, body.clone());
    Some(body)
}

fn json_body(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn invalidate(
    State(state): State<AppState>,
    JsonBody(invalidation): JsonBody<Invalidation>,
) -> Data<&'static str> {
    if invalidation.reset {
        state.cache.reset();
        tracing::info!("the catalog restarted: cache emptied until it grants a new lease");
    }
    for toy in &invalidation.toys {
        state.cache.invalidate(&toy.name, toy.version);
    }
    Data::new("ok")
}
