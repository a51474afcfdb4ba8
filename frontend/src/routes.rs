//! HTTP handlers: the public API, the catalog's invalidation endpoint, and status. Each one
//! validates its input and hands the work to a module ([`crate::products`],
//! [`crate::orders`], [`crate::cache`]).

use api::ApiError;
use api::cache_lease::Invalidation;
use api::catalog::Product;
use api::cli::ClusterToken;
use api::envelope::{ApiResult, Data};
use api::frontend::{IDEMPOTENCY_KEY, OrderRequest, routes};
use api::order::{
    OrderPlaced, OrderRecord, PlaceOrder, QUANTITY_RULE, TOY_NAME_RULE, check_order,
    parse_order_number, valid_toy_name,
};
use api::request_id::{REQUEST_ID_RULE, valid_request_id};
use api::server::{JsonBody, PathParam, require_cluster_token};
use api::status::FrontendStatus;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;

use crate::AppState;

pub fn router(state: AppState, token: Option<ClusterToken>) -> Router {
    // Times every order answer for the dashboard's chart (on this route only: the cached
    // product reads pay nothing for it).
    let timed =
        middleware::from_fn_with_state(state.order_stats.clone(), crate::order_stats::observe);
    let internal = Router::new()
        .route(routes::INVALIDATE, post(invalidate))
        .route_layer(middleware::from_fn_with_state(token, require_cluster_token));
    Router::new()
        .route(routes::STATUS, get(status))
        .route(routes::PRODUCTS, get(products))
        .route(routes::PRODUCT, get(product))
        .route(routes::ORDERS, post(place_order).route_layer(timed))
        .route(routes::ORDER, get(lookup_order))
        .merge(internal)
        .with_state(state)
}

async fn status(State(state): State<AppState>) -> Data<FrontendStatus> {
    Data::new(state.frontend_status())
}

async fn products(State(state): State<AppState>) -> ApiResult<Vec<Product>> {
    Ok(Data::new(state.products.products().await?))
}

/// Served from the cache when possible; a miss costs exactly one catalog round trip. The
/// `ETag` is the version of the toy's stock the answer shows. A name no toy can have (`..`, a
/// `/`, …) is refused here: it would not survive the trip to the catalog as one path segment.
async fn product(State(state): State<AppState>, PathParam(name): PathParam<String>) -> Response {
    if !valid_toy_name(&name) {
        return ApiError::bad_request(TOY_NAME_RULE).into_response();
    }
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
    // Bounded here, before anything reaches a replica, the catalog or the log.
    let quantity = u64::try_from(order.quantity).unwrap_or(0);
    check_order(&order.name, quantity)?;
    let quantity = u32::try_from(quantity).map_err(|_| ApiError::bad_request(QUANTITY_RULE))?;
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
