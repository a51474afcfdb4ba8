//! A bare axum handler: one route, one fixed JSON body, no middleware, no cache. What the
//! front-end's cached `GET /products/{name}` is measured against.

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

/// The bare server, on a multi-threaded runtime of its own (the front-end's kind), until
/// dropped.
pub struct BareServer {
    _runtime: tokio::runtime::Runtime,
}

impl BareServer {
    /// Listens on `listen` and serves from now on.
    pub fn start(listen: SocketAddr) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Runtime::new()?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(listen))
            .with_context(|| format!("the bare server cannot listen on {listen}"))?;
        let router = Router::new().route(api::frontend::routes::PRODUCT, get(product));
        runtime.spawn(async move { axum::serve(listener, router).await });
        Ok(Self { _runtime: runtime })
    }
}

/// The same body the front-end sends for Tux, built per request as a plain handler would.
async fn product(Path(name): Path<String>) -> impl IntoResponse {
    let body = serde_json::json!({"data": {"name": name, "price": 25.99, "quantity": 100}});
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}
