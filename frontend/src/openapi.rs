//! The public API as an OpenAPI 3.1 document, served at `GET /openapi.json`.
//!
//! The schemas are derived from the wire types in `api` (`ToSchema`), the paths are the route
//! constants the router serves, and every status a route can answer is listed with the error
//! envelope, so the document cannot drift from the types. The operations are described on the
//! bodiless functions below rather than on the handlers in `routes.rs`: the handlers stay plain
//! axum, and this file is the one place to read the API as a whole. `cluster/fuzz-api.sh` holds
//! the running store to this document with schemathesis.

use std::sync::OnceLock;

use api::ApiError;
use api::catalog::Product;
use api::envelope::{Data, ErrorBody, ErrorDetail, Reason};
use api::frontend::{OrderRequest, routes};
use api::order::{OrderPlaced, OrderRecord};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Toy store",
        description = "The toy store's public API (CONTRACT.md §2). Every answer is JSON: \
            `{\"data\": …}` with status 200, or the error envelope `{\"error\": {\"code\", \
            \"reason\", \"message\"}}` with the HTTP status equal to `code`. Programs decide on \
            `code` and `reason`, never on `message`. Every route answers a method it does not \
            serve with 405 (`method_not_allowed`), an unknown path with 404 (`not_found`).",
    ),
    paths(products, product, place_order, lookup_order),
    components(schemas(ErrorBody, ErrorDetail, Reason, Product, OrderRequest, OrderPlaced, OrderRecord)),
    tags((name = "products", description = "Toys and their stock"),
         (name = "orders", description = "Buying, and reading orders back")),
)]
pub struct PublicApi;

/// `GET /openapi.json`: the document, rendered once.
pub async fn document() -> Response {
    static JSON: OnceLock<Result<String, String>> = OnceLock::new();
    let json = JSON.get_or_init(|| {
        PublicApi::openapi()
            .to_pretty_json()
            .map_err(|err| err.to_string())
    });
    match json {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json.as_str()).into_response(),
        // Only a bug in a derive could make this fail; the details go to the log.
        Err(err) => {
            ApiError::internal(format!("cannot render the OpenAPI document: {err}")).into_response()
        }
    }
}

/// Every toy with its price and current stock.
///
/// Straight from the catalog, which holds the stock.
#[utoipa::path(get, path = routes::PRODUCTS, tag = "products", operation_id = "products",
    responses(
        (status = 200, description = "The whole catalog", body = Data<Vec<Product>>),
        (status = 503, description = "`unavailable`: the catalog cannot be reached", body = ErrorBody),
        (status = "5XX", description = "`internal` (500), or `unavailable` (502, 504)", body = ErrorBody),
    ))]
#[allow(dead_code)]
fn products() {}

/// One toy, with its price and current stock.
///
/// From the front-end's cache when possible, which is never stale (README, "a cache that is
/// never stale"). The `ETag` is the version of the stock the answer shows.
#[utoipa::path(get, path = routes::PRODUCT, tag = "products", operation_id = "product",
    // The rule of `OrderRequest::name` (api/src/frontend.rs); a test holds the two equal.
    params(("name" = String, Path, example = "Tux", min_length = 1, max_length = 64,
        pattern = r"^(?:[^/\u0000-\u001f\u007f-\u009f]*[^./\u0000-\u001f\u007f-\u009f][^/\u0000-\u001f\u007f-\u009f]*|[^/\u0000-\u001f\u007f-\u009f]{3,})$",
        description = "The toy's name, case-sensitive, percent-encoded as one path segment")),
    responses(
        (status = 200, description = "The toy", body = Data<Product>,
            headers(("ETag" = String, description = "The toy's stock version, quoted; it grows with every stock change"))),
        (status = 400, description = "`bad_request`: no toy can have that name (over 256 bytes, a `/` or a \
            control character, `.` or `..`)", body = ErrorBody),
        (status = 404, description = "`unknown_toy`: no toy by that name (`not_found` for an empty name)", body = ErrorBody),
        (status = 503, description = "`unavailable`: the catalog cannot be reached", body = ErrorBody),
        (status = "5XX", description = "`internal` (500), or `unavailable` (502, 504)", body = ErrorBody),
    ))]
#[allow(dead_code)]
fn product() {}

/// Buys `quantity` units of a toy.
///
/// Committed through Raft before the answer. With an `Idempotency-Key`, sending the same order
/// again (a retry, a double click) returns the same order number and buys nothing more.
#[utoipa::path(post, path = routes::ORDERS, tag = "orders", operation_id = "place_order",
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Makes the order idempotent: 1 to 128 visible ASCII characters, e.g. a UUID",
        min_length = 1, max_length = 128, pattern = r"^[!-~]+$")),
    request_body(content = OrderRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Placed: the order's number", body = Data<OrderPlaced>),
        (status = 400, description = "`out_of_stock`: not enough units now (the message says how many are left); \
            `bad_request`: malformed JSON, a name or quantity out of bounds, a malformed Idempotency-Key", body = ErrorBody),
        (status = 404, description = "`unknown_toy`: no toy by that name", body = ErrorBody),
        (status = 409, description = "`request_id_reused`: the key was used for a different order; \
            `request_id_expired`: it was used too long ago to tell whether this is a retry", body = ErrorBody),
        (status = 413, description = "`unsupported_body`: the body is over 16 KiB", body = ErrorBody),
        (status = 415, description = "`unsupported_body`: the body is not `application/json`", body = ErrorBody),
        (status = 503, description = "`unavailable`: the order service stayed unavailable while the \
            front-end retried (5 s); retry with the same key", body = ErrorBody),
        (status = "5XX", description = "`internal` (500), or `unavailable` (502, 504)", body = ErrorBody),
    ))]
#[allow(dead_code)]
fn place_order() {}

/// One order, by number.
///
/// Linearizable: an order acknowledged to anyone is found.
#[utoipa::path(get, path = routes::ORDER, tag = "orders", operation_id = "lookup_order",
    params(("number" = u64, Path, example = 0, description = "The order number `POST /orders` answered",
        maximum = 9_223_372_036_854_775_807_i64)),
    responses(
        (status = 200, description = "The order", body = Data<OrderRecord>),
        (status = 400, description = "`bad_request`: the number is not a non-negative integer", body = ErrorBody),
        (status = 404, description = "`no_such_order`: no order with that number", body = ErrorBody),
        (status = 503, description = "`unavailable`: no replica could answer in time", body = ErrorBody),
        (status = "5XX", description = "`internal` (500), or `unavailable` (502, 504)", body = ErrorBody),
    ))]
#[allow(dead_code)]
fn lookup_order() {}

#[cfg(test)]
mod tests {
    use super::*;
    use api::order::{MAX_ORDER_QUANTITY, MAX_TOY_NAME_LEN};
    use api::request_id::MAX_REQUEST_ID_LEN;

    /// The document lists exactly the public routes, with the envelope on every failure.
    #[test]
    fn every_public_route_is_documented_with_its_failures() {
        let doc = serde_json::to_value(PublicApi::openapi()).expect("the document is JSON");
        let paths = doc["paths"].as_object().expect("paths");
        let mut listed: Vec<&str> = paths.keys().map(String::as_str).collect();
        listed.sort_unstable();
        assert_eq!(
            listed,
            [
                routes::ORDERS,
                routes::ORDER,
                routes::PRODUCTS,
                routes::PRODUCT
            ]
        );
        let statuses = |path: &str, method: &str| -> Vec<String> {
            doc["paths"][path][method]["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path} has responses"))
                .keys()
                .cloned()
                .collect()
        };
        assert_eq!(
            statuses(routes::ORDERS, "post"),
            ["200", "400", "404", "409", "413", "415", "503", "5XX"]
        );
        assert_eq!(
            statuses(routes::ORDER, "get"),
            ["200", "400", "404", "503", "5XX"]
        );
        let not_found = &doc["paths"][routes::PRODUCT]["get"]["responses"]["404"];
        assert!(
            not_found["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .is_some_and(|r| r.ends_with("/ErrorBody")),
            "{not_found}"
        );
        // The bounds are the ones the store enforces (api::order).
        let order = &doc["components"]["schemas"]["OrderRequest"]["properties"];
        assert_eq!(order["quantity"]["minimum"], 1, "{order}");
        assert_eq!(order["quantity"]["maximum"], MAX_ORDER_QUANTITY, "{order}");
        let name = &doc["paths"][routes::PRODUCT]["get"]["parameters"][0]["schema"];
        assert_eq!(name["pattern"], order["name"]["pattern"]);
        assert_eq!(name["maxLength"], order["name"]["maxLength"]);
        let chars = order["name"]["maxLength"].as_u64().expect("a length");
        assert!(
            chars * 4 <= MAX_TOY_NAME_LEN as u64,
            "64 UTF-8 characters fit the byte bound"
        );
        let key = &doc["paths"][routes::ORDERS]["post"]["parameters"][0]["schema"];
        assert_eq!(key["maxLength"], MAX_REQUEST_ID_LEN, "{key}");
        assert!(
            doc["paths"][routes::PRODUCT]["get"]["responses"]["200"]["headers"]["ETag"].is_object()
        );
        let reasons = doc["components"]["schemas"]["Reason"].to_string();
        for reason in [
            "out_of_stock",
            "unknown_toy",
            "unavailable",
            "request_id_reused",
        ] {
            assert!(reasons.contains(reason), "{reason} in {reasons}");
        }
    }
}
