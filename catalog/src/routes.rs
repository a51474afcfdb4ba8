//! HTTP handlers: thin wrappers over the ledger and the lease table.

use std::sync::Arc;

use api::ApiError;
use api::catalog::{
    BuyAnswers, BuyBatch, BuyOutcome, BuyRequest, LeaseGrant, LeaseRequest, MAX_BUY_BATCH,
    VersionedProduct,
};
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
        .route("/buy", post(buy))
        .route(
            "/buys",
            post(buy_many).layer(DefaultBodyLimit::max(api::catalog::MAX_BUY_BATCH_BODY)),
        )
        .route("/frontends", post(register_frontend))
        .route_layer(middleware::from_fn_with_state(token, require_cluster_token));
    Router::new()
        .route("/products", get(products))
        .route("/products/{name}", get(product))
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
    if !request.url.starts_with("http://") || request.url.len() > 256 {
        return Err(ApiError::bad_request(
            "url must be an http:// URL of at most 256 bytes",
        ));
    }
    Ok(Data::new(
        state.leases.grant(request.url.trim_end_matches('/')),
    ))
}
