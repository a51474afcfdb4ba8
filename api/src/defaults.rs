//! Default addresses and knobs, in one place so that every binary, script and test agrees.

/// Front-end listen address.
pub const FRONTEND_ADDR: &str = "127.0.0.1:8000";
/// Catalog listen address.
pub const CATALOG_ADDR: &str = "127.0.0.1:8100";
/// Where the front-end and the order replicas reach the catalog by default.
pub const CATALOG_URL: &str = "http://127.0.0.1:8100";
/// Where clients reach the front-end by default.
pub const FRONTEND_URL: &str = "http://127.0.0.1:8000";
/// Order replicas, `id=url` pairs: node `N` listens on port `8200 + N`.
pub const ORDER_NODES: &str =
    "1=http://127.0.0.1:8201,2=http://127.0.0.1:8202,3=http://127.0.0.1:8203";

/// Header carrying the shared secret on internal endpoints.
pub const CLUSTER_TOKEN_HEADER: &str = "x-cluster-token";
/// Header carrying the request id across services.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Largest body a public or internal JSON endpoint accepts.
pub const MAX_JSON_BODY: usize = 16 * 1024;
