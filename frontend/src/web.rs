//! What the front-end serves to browsers: the storefront (`/`), the cluster dashboard
//! (`/dashboard`) and its data (`/dashboard/data`), their scripts and style sheet, and the
//! OpenAPI document (`/openapi.json`).
//!
//! The pages are plain HTML, CSS and JavaScript in `frontend/web/`, compiled into the binary:
//! no build step, no CDN, nothing fetched from anywhere but this front-end, so they work
//! offline. The pages call the same public API any client does.

use api::ApiError;
use api::envelope::Data;
use api::frontend::{DashboardData, routes};
use api::server::PathParam;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

/// One embedded file: its name under `/assets/`, content type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";

const STOREFRONT: &str = include_str!("../web/index.html");
const DASHBOARD: &str = include_str!("../web/dashboard.html");

const ASSETS: &[Asset] = &[
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../web/style.css"),
    },
    Asset {
        name: "store.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../web/store.js"),
    },
    Asset {
        name: "dashboard.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../web/dashboard.js"),
    },
];

/// The browser-facing routes, to be merged into the front-end's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(routes::STOREFRONT, get(|| async { page(STOREFRONT) }))
        .route(routes::DASHBOARD, get(|| async { page(DASHBOARD) }))
        .route(routes::ASSET, get(asset))
        .route(routes::DASHBOARD_DATA, get(dashboard_data))
        .route(routes::OPENAPI, get(crate::openapi::document))
        .with_state(state)
}

fn page(html: &'static str) -> Response {
    with_type(HTML, html)
}

fn with_type(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // The files change only with the binary; a reload after an upgrade must see them.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

async fn asset(PathParam(file): PathParam<String>) -> Response {
    match ASSETS.iter().find(|asset| asset.name == file) {
        Some(asset) => with_type(asset.content_type, asset.body),
        None => ApiError::not_found(format!("no asset named {file:?}")).into_response(),
    }
}

async fn dashboard_data(State(state): State<AppState>) -> Data<DashboardData> {
    Data::new(state.dashboard.data(state.frontend_status()).await)
}
