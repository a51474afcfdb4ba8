//! `ProductReader`: product queries, from the cache when possible, else from the catalog.
//!
//! A hit is a ready-to-send body. A miss costs exactly one catalog read, whose answer fills
//! the cache unless an invalidation or a clear overtook it (see [`crate::cache`]).

use std::sync::Arc;

use api::ApiError;
use api::catalog::{CatalogClient, Product, VersionedProduct};
use api::envelope::Data;
use axum::http::{HeaderValue, StatusCode};
use bytes::Bytes;

use crate::cache::{ProductCache, version_etag};
use crate::error::FrontendError;

pub struct ProductReader {
    cache: Arc<ProductCache>,
    catalog: CatalogClient,
}

impl ProductReader {
    pub fn new(cache: Arc<ProductCache>, catalog: CatalogClient) -> Self {
        Self { cache, catalog }
    }

    /// The JSON body of `GET /products/{name}`, and its `ETag`: the version of the stock it
    /// shows.
    pub async fn product(&self, name: &str) -> Result<(Bytes, HeaderValue), FrontendError> {
        if let Some(hit) = self.cache.get(name) {
            return Ok(hit);
        }
        let ticket = self.cache.ticket();
        let toy = self
            .catalog
            .product(name)
            .await
            .map_err(FrontendError::from_catalog)?;
        // The answer is cached under the name asked for: it must be that toy's.
        if toy.name != name {
            return Err(FrontendError::Api(ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!(
                    "the catalog answered {:?} when asked for {name:?}",
                    toy.name
                ),
            )));
        }
        let body = serde_json::to_vec(&Data::new(toy.public()))
            .map(Bytes::from)
            .map_err(|err| FrontendError::Encode(err.to_string()))?;
        self.cache.fill(ticket, name, toy.version, body.clone());
        Ok((body, version_etag(toy.version)))
    }

    /// Every toy, straight from the catalog (the whole list is not cached).
    pub async fn products(&self) -> Result<Vec<Product>, FrontendError> {
        let toys = self
            .catalog
            .products()
            .await
            .map_err(FrontendError::from_catalog)?;
        Ok(toys.iter().map(VersionedProduct::public).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use api::catalog::{CatalogClient, VersionedProduct, routes};
    use api::client::ServiceClient;
    use api::envelope::Data;
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;
    use tokio::time::Instant;

    use super::ProductReader;
    use crate::cache::ProductCache;
    use crate::error::FrontendError;
    use crate::metrics::CacheMetrics;

    /// A catalog that answers every product query with Tux (as a path mix-up would).
    async fn confused_catalog() -> reqwest::Url {
        let router = Router::new().route(
            routes::PRODUCT,
            get(|| async {
                Data::new(VersionedProduct {
                    name: "Tux".into(),
                    price: 25.99,
                    quantity: 100,
                    version: 7,
                })
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        api::url::parse_base_url(&format!("http://{addr}")).unwrap()
    }

    #[tokio::test]
    async fn an_answer_for_another_toy_is_neither_served_nor_cached() {
        let cache = std::sync::Arc::new(ProductCache::new(4, CacheMetrics::default()));
        cache.extend_lease(Instant::now() + Duration::from_secs(3600));
        let catalog = CatalogClient::new(
            confused_catalog().await,
            ServiceClient::new(Duration::from_secs(5), None),
        );
        let reader = ProductReader::new(cache.clone(), catalog);
        match reader.product("Lego").await {
            Err(FrontendError::Api(err)) => assert_eq!(err.status, StatusCode::BAD_GATEWAY),
            Err(other) => panic!("unexpected error {other}"),
            Ok((body, _)) => panic!("served {} for Lego", String::from_utf8_lossy(&body)),
        }
        assert!(cache.get("Lego").is_none(), "Tux was cached as Lego");
        // The right answer still goes through.
        assert!(reader.product("Tux").await.is_ok());
    }
}
