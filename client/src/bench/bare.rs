//! A bare axum handler: one route, one fixed JSON body, no middleware, no cache. What the
//! front-end's cached `GET /products/{name}` is measured against.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

#[derive(Debug, clap::Args)]
pub struct BareServer {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8050")]
    pub listen: SocketAddr,
}

impl BareServer {
    pub async fn run(&self) -> std::io::Result<()> {
        let router = Router::new().route(api::frontend::routes::PRODUCT, get(product));
        let listener = tokio::net::TcpListener::bind(self.listen).await?;
        println!("bare axum server on http://{}", self.listen);
        axum::serve(listener, router).await
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
