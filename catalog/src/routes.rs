//! HTTP handlers: thin wrappers over the ledger and the cache leases.

use std::time::Duration;

use api::ApiError;
use api::cache_lease::{LeaseGrant, LeaseRequest};
use api::catalog::{
    MAX_BATCH, MAX_BATCH_BODY, MAX_RECORDS_PAGE, PendingReservation, ReservationBatch,
    ReservationId, ReservationRecordsPage, ReserveAnswers, SettleOutcome, SettlementBatch,
    ToyStock, VersionedProduct, routes,
};
use api::cli::ClusterToken;
use api::envelope::{ApiResult, Data};
use api::server::{JsonBody, PathParam, require_cluster_token};
use api::url::parse_base_url;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::middleware;
use axum::routing::{get, post};
use serde::Deserialize;

use crate::AppState;
use crate::error::CatalogError;

pub fn router(state: AppState, token: Option<ClusterToken>) -> Router {
    let internal = Router::new()
        .route(
            routes::RESERVATIONS,
            post(reserve).layer(DefaultBodyLimit::max(MAX_BATCH_BODY)),
        )
        .route(routes::PENDING, get(pending))
        .route(
            routes::SETTLEMENTS,
            post(settle).layer(DefaultBodyLimit::max(MAX_BATCH_BODY)),
        )
        .route(routes::RESERVATION_RECORDS, get(records))
        .route(routes::STOCK, get(stock))
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

fn check_batch_len(len: usize) -> Result<(), ApiError> {
    if len > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_BATCH} items per batch"
        )));
    }
    Ok(())
}

async fn reserve(
    State(state): State<AppState>,
    JsonBody(batch): JsonBody<ReservationBatch>,
) -> ApiResult<ReserveAnswers> {
    check_batch_len(batch.reservations.len())?;
    let answers = state
        .ledger
        .reserve_many(batch.reservations)
        .await
        .into_iter()
        .map(|answer| answer.map_err(|err| ApiError::from(err).detail()))
        .collect();
    Ok(Data::new(answers))
}

async fn settle(
    State(state): State<AppState>,
    JsonBody(batch): JsonBody<SettlementBatch>,
) -> ApiResult<Vec<SettleOutcome>> {
    check_batch_len(batch.settlements.len())?;
    let answers = state
        .ledger
        .settle_many(batch.settlements)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::from)?;
    Ok(Data::new(answers))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PendingQuery {
    older_than_ms: u64,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    MAX_BATCH
}

async fn pending(
    State(state): State<AppState>,
    query: Result<Query<PendingQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Vec<PendingReservation>> {
    let Query(query) = query.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let ledger = state.ledger.clone();
    let older_than = Duration::from_millis(query.older_than_ms);
    let limit = query.limit.min(MAX_BATCH);
    let found = tokio::task::spawn_blocking(move || ledger.pending(older_than, limit))
        .await
        .map_err(|err| ApiError::internal(err.to_string()))?
        .map_err(ApiError::from)?;
    Ok(Data::new(found))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordsQuery {
    after_request_id: Option<String>,
    after_attempt: Option<u32>,
    #[serde(default = "default_records_limit")]
    limit: usize,
}

fn default_records_limit() -> usize {
    MAX_RECORDS_PAGE
}

/// Every reservation record with its state, a page at a time: what a checker matches with
/// the replicas' orders once the store has settled.
async fn records(
    State(state): State<AppState>,
    query: Result<Query<RecordsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<ReservationRecordsPage> {
    let Query(query) = query.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let after = match (query.after_request_id, query.after_attempt) {
        (Some(request_id), Some(attempt)) => Some(ReservationId {
            request_id,
            attempt,
        }),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request(
                "after_request_id and after_attempt go together",
            ));
        }
    };
    let ledger = state.ledger.clone();
    let limit = query.limit.clamp(1, MAX_RECORDS_PAGE);
    let page = tokio::task::spawn_blocking(move || ledger.records(after.as_ref(), limit))
        .await
        .map_err(|err| ApiError::internal(err.to_string()))?
        .map_err(ApiError::from)?;
    Ok(Data::new(page))
}

async fn stock(State(state): State<AppState>) -> Data<Vec<ToyStock>> {
    Data::new(state.ledger.stock())
}

async fn register_frontend(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<LeaseRequest>,
) -> ApiResult<LeaseGrant> {
    if request.url.len() > 256 {
        return Err(ApiError::bad_request("url must be at most 256 bytes"));
    }
    let url = parse_base_url(&request.url).map_err(ApiError::bad_request)?;
    let grant = state.leases.grant(url, request.epoch).await?;
    Ok(Data::new(grant))
}
