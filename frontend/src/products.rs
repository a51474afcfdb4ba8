//! `ProductReader`: product queries, from the cache when possible, else from the catalog.
//!
//! A hit is a ready-to-send body. A miss costs exactly one catalog read, whose answer fills
//! the cache unless an invalidation or a clear overtook it (see [`crate::cache`]).

use std::sync::Arc;

use api::catalog::{CatalogClient, Product, VersionedProduct};
use api::envelope::Data;
use axum::http::HeaderValue;
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
