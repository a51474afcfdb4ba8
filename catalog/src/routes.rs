//! HTTP handlers: thin wrappers over the ledger and the cache leases.

use std::sync::Arc;

use api::ApiError;
use api::cache_lease::{LeaseGrant, LeaseRequest};
use api::catalog::{
    BuyAnswers, BuyBatch, BuyOutcome, BuyRequest, MAX_BUY_BATCH, VersionedProduct, routes,
};
use api::client::parse_base_url;
use api::envelope::{ApiResult, Data};
use api::server::{JsonBody, PathParam, require_cluster_token};
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::middleware;
use axum::routing::{get, post};

use crate::AppState;
use crate::error::CatalogError;

pub fn router(state: AppState, token: Option<Arc<str>>) -> Router {
    let internal = Router::new()
        .route(routes::BUY, post(buy))
        .route(
            routes::BUYS,
            post(buy_many).layer(DefaultBodyLimit::max(api::catalog::MAX_BUY_BATCH_BODY)),
        )
        .route(routes::FRONTENDS, post(register_frontend))
        .route_layer(middleware::from_fn_with_state(token, require_cluster_token));
    Router::new()
        .route(routes::PRODUCTS, get(products))
        .route(routes::PRODUCT, get(product))
        .merge(internal)
        .with_state(state)
}

async fn products(State(state): State<AppState>) -> Data<Vec<VersionedProduct>> {
    Data::new(state.ledger.products())
}

async fn product(
    State(state): State<AppState>,
    PathParam(name): PathParam<String>,
) -> ApiResult<VersionedProduct> {
    state
        .ledger
        .product(&name)
        .map(Data::new)
        .ok_or_else(|| CatalogError::UnknownProduct(name).into())
}

async fn buy(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<BuyRequest>,
) -> ApiResult<BuyOutcome> {
    let outcome = state.ledger.buy(request).await.map_err(ApiError::from)?;
    Ok(Data::new(outcome))
}

async fn buy_many(
    State(state): State<AppState>,
    JsonBody(batch): JsonBody<BuyBatch>,
) -> ApiResult<BuyAnswers> {
    if batch.buys.len() > MAX_BUY_BATCH {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_BUY_BATCH} buys per batch"
        )));
    }
    let answers = state
        .ledger
        .buy_many(batch.buys)
        .await
        .into_iter()
        .map(|answer| answer.map_err(|err| ApiError::from(err).body().error))
        .collect();
    Ok(Data::new(answers))
}

async fn register_frontend(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<LeaseRequest>,
) -> ApiResult<LeaseGrant> {
    if request.url.len() > 256 {
        return Err(ApiError::bad_request("url must be at most 256 bytes"));
    }
    let url = parse_base_url(&request.url).map_err(ApiError::bad_request)?;
    Ok(Data::new(state.leases.grant(url)))
}
