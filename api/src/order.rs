//! The order replicas' HTTP contract: their routes, the bodies of the order endpoints (the
//! front-end's public ones and the replicas' internal ones share [`OrderPlaced`] and
//! [`OrderRecord`]), the request-id rules, and [`ReplicaClient`], the typed client the
//! front-end, the other replicas and the tests call a replica with.

use serde::{Deserialize, Serialize};

use crate::client::{CallError, ServiceClient};
use crate::status::NodeStatus;
use crate::url::route_url;

/// A replica's routes. Its router and every caller use these templates.
pub mod routes {
    /// `POST` (internal): place an order (request id in the body).
    pub const ORDERS: &str = "/orders";
    /// `POST` (internal): place several orders in one call, each as if alone.
    pub const ORDERS_BATCH: &str = "/orders/batch";
    /// `GET` (internal): one order, linearizable.
    pub const ORDER: &str = "/orders/{number}";
    /// `POST` (internal): the front-end's replica selection.
    pub const SELECTION: &str = "/selection";
    /// `GET`: role, term, indexes, digest.
    pub const STATUS: &str = "/status";
    /// `GET` (internal): the orders this replica holds, `?from=N&limit=M`, in number order,
    /// with their request ids; a local read, for checkers, not linearizable.
    pub const LOCAL_ORDERS: &str = "/replica/orders";
    /// `POST` (internal, tests and chaos runs only): arm a fault point.
    pub const FAULTS: &str = "/faults";
    /// `POST` (internal): Raft AppendEntries, bincode body.
    pub const RAFT_APPEND: &str = "/raft/append";
    /// `POST` (internal): Raft RequestVote, bincode body.
    pub const RAFT_VOTE: &str = "/raft/vote";
    /// `POST` (internal): Raft Pre-Vote (would you vote for me?), bincode body.
    pub const RAFT_PRE_VOTE: &str = "/raft/pre-vote";
    /// `POST` (internal): Raft InstallSnapshot, bincode body.
    pub const RAFT_SNAPSHOT: &str = "/raft/snapshot";
}

/// Header marking a request one replica forwarded to another (its value: the forwarder's id).
/// A forwarded request is never forwarded again.
pub const FORWARDED_BY: &str = "x-forwarded-by";

/// Header carrying how many milliseconds the sender will still wait for the answer. The
/// front-end sets it on every attempt, a replica passes what is left of it on when it
/// forwards, so no step inside the store outlives the request that asked for it.
pub const BUDGET_MS: &str = "x-budget-ms";

/// How a request reaches a replica: from whom, and how long its sender waits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hop {
    /// The replica that forwarded it, if one did.
    pub forwarded_by: Option<u64>,
    /// How long the sender will wait for the answer, if it said.
    pub budget: Option<std::time::Duration>,
}

impl Hop {
    /// A request straight from a client with `budget` to spend.
    pub fn with_budget(budget: std::time::Duration) -> Self {
        Self {
            forwarded_by: None,
            budget: Some(budget),
        }
    }

    /// Reads the two headers; a malformed value counts as absent.
    pub fn from_headers(headers: &reqwest::header::HeaderMap) -> Self {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
        };
        Self {
            forwarded_by: number(FORWARDED_BY),
            budget: number(BUDGET_MS).map(std::time::Duration::from_millis),
        }
    }

    fn apply(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some(id) = self.forwarded_by {
            request = request.header(FORWARDED_BY, id);
        }
        if let Some(budget) = self.budget {
            request = request
                .header(BUDGET_MS, budget.as_millis() as u64)
                // Our side of the call waits no longer than we told the replica.
                .timeout(budget);
        }
        request
    }
}

/// Most units one order may ask for. An order is refused (400) above it at the front-end and at
/// the replica, before it reaches the catalog or the Raft log: no toy's stock level can be
/// near it in this store (the catalog's is 100 by default), and a bound keeps every sum of
/// quantities far from overflow.
pub const MAX_ORDER_QUANTITY: u32 = 1_000_000;

/// What [`valid_quantity`] accepts, as a sentence for error messages.
pub const QUANTITY_RULE: &str = "quantity must be a whole number from 1 to 1000000";

/// An order's quantity is 1 to [`MAX_ORDER_QUANTITY`].
pub fn valid_quantity(quantity: u64) -> bool {
    (1..=u64::from(MAX_ORDER_QUANTITY)).contains(&quantity)
}

/// Longest toy name, in bytes.
pub const MAX_TOY_NAME_LEN: usize = 256;

/// What [`valid_toy_name`] accepts, as a sentence for error messages.
pub const TOY_NAME_RULE: &str =
    "a toy name must be 1 to 256 bytes without '/' or control characters, and not \".\" or \"..\"";

/// Whether `name` can be a toy's name: 1 to [`MAX_TOY_NAME_LEN`] bytes, no `/` and no control
/// characters, not `.` or `..`. A name travels as one segment of a URL path (the front-end asks
/// the catalog for `/products/{name}`): `.` and `..` would be dropped from the path, and a `/`
/// would be another segment, so such a name would reach another route.
pub fn valid_toy_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TOY_NAME_LEN
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c.is_control())
}

/// The 400 for an order whose name or quantity is out of bounds, if it is.
pub fn check_order(name: &str, quantity: u64) -> Result<(), crate::ApiError> {
    if !valid_toy_name(name) {
        return Err(crate::ApiError::bad_request(TOY_NAME_RULE));
    }
    if !valid_quantity(quantity) {
        return Err(crate::ApiError::bad_request(QUANTITY_RULE));
    }
    Ok(())
}

/// The `{number}` of `GET /orders/{number}`, or the 400 every service answers for it.
pub fn parse_order_number(text: &str) -> Result<u64, crate::ApiError> {
    text.parse().map_err(|_| {
        crate::ApiError::bad_request(format!(
            "order number {text:?} is not a non-negative integer"
        ))
    })
}

/// `POST /orders` on an order replica (internal): the front-end's order with its request id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceOrder {
    pub request_id: String,
    pub name: String,
    pub quantity: u32,
}

/// `POST /orders/batch` on an order replica (internal): the front-end's concurrent orders in
/// one request, so the leader handles one HTTP request, one catalog call and one Raft entry
/// for all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceOrders {
    pub orders: Vec<PlaceOrder>,
}

/// Most orders one [`PlaceOrders`] may carry.
pub const MAX_ORDER_BATCH: usize = 1024;

/// Largest `POST /orders/batch` body: [`MAX_ORDER_BATCH`] orders of generous size.
pub const MAX_ORDER_BATCH_BODY: usize = MAX_ORDER_BATCH * 512;

/// The answer to a [`PlaceOrders`]: one result per order, in order.
pub type PlacedAnswers = Vec<Result<OrderPlaced, crate::ErrorDetail>>;

/// The answer to a successful `POST /orders`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderPlaced {
    pub order_number: u64,
    /// The version of the toy's stock the order's reservation produced (the catalog's
    /// `reserved` answer): once this answer is out, no front-end shows the toy at a lower
    /// version, so a checker can hold every later query to it. Absent when the answer came
    /// from the replicas' memory of the request id (a retry of an order placed before), and
    /// from peers older than the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock_version: Option<u64>,
}

/// An order as `GET /orders/{number}` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderRecord {
    pub number: u64,
    pub name: String,
    pub quantity: u32,
}

/// An order as one replica holds it (`GET /replica/orders`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaOrder {
    pub number: u64,
    pub request_id: String,
    /// Which attempt at the request id placed it: the reservation that holds its stock.
    pub attempt: u32,
    pub name: String,
    pub quantity: u32,
}

/// Most orders one `GET /replica/orders` returns.
pub const MAX_LOCAL_ORDERS: usize = 10_000;

/// `POST /selection` on an order replica (internal): the replica the front-end selected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    pub replica_id: u64,
}

/// One order replica as its callers see it.
#[derive(Debug, Clone)]
pub struct ReplicaClient {
    http: ServiceClient,
    base: reqwest::Url,
}

impl ReplicaClient {
    pub fn new(base: reqwest::Url, http: ServiceClient) -> Self {
        Self { http, base }
    }

    /// A client for every replica of the address book, by id, all sharing `http`.
    pub fn all(
        nodes: &crate::cluster::NodeAddrs,
        http: &ServiceClient,
    ) -> std::collections::BTreeMap<u64, ReplicaClient> {
        nodes
            .iter()
            .map(|(id, url)| (id, ReplicaClient::new(url.clone(), http.clone())))
            .collect()
    }

    pub fn base(&self) -> &reqwest::Url {
        &self.base
    }

    /// `POST /orders`.
    pub async fn place(&self, order: &PlaceOrder, hop: Hop) -> Result<OrderPlaced, CallError> {
        let request = self
            .http
            .post(route_url(&self.base, routes::ORDERS, &[]).as_str())
            .json(order);
        self.http.call(hop.apply(request)).await
    }

    /// `POST /orders/batch`: one answer per order, in order.
    pub async fn place_many(
        &self,
        orders: &PlaceOrders,
        hop: Hop,
    ) -> Result<PlacedAnswers, CallError> {
        let request = self
            .http
            .post(route_url(&self.base, routes::ORDERS_BATCH, &[]).as_str())
            .json(orders);
        self.http.call(hop.apply(request)).await
    }

    /// `GET /orders/{number}`.
    pub async fn lookup(&self, number: u64, hop: Hop) -> Result<OrderRecord, CallError> {
        let number = number.to_string();
        let request = self
            .http
            .get(route_url(&self.base, routes::ORDER, &[&number]).as_str());
        self.http.call(hop.apply(request)).await
    }

    /// `POST /selection`: tells the replica which replica the front-end selected.
    pub async fn announce_selection(&self, selection: &Selection) -> Result<(), CallError> {
        self.http
            .post_json::<serde_json::Value, _>(
                &route_url(&self.base, routes::SELECTION, &[]),
                selection,
            )
            .await
            .map(drop)
    }

    /// `GET /health`.
    pub async fn health(&self) -> Result<serde_json::Value, CallError> {
        self.http
            .get_json(&route_url(&self.base, crate::server::routes::HEALTH, &[]))
            .await
    }

    /// `GET /status`.
    pub async fn status(&self) -> Result<NodeStatus, CallError> {
        self.http
            .get_json(&route_url(&self.base, routes::STATUS, &[]))
            .await
    }

    /// `GET /replica/orders`: up to `limit` orders from number `from` on, as this replica
    /// holds them.
    pub async fn local_orders(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<ReplicaOrder>, CallError> {
        let mut url = route_url(&self.base, routes::LOCAL_ORDERS, &[]);
        url.query_pairs_mut()
            .append_pair("from", &from.to_string())
            .append_pair("limit", &limit.to_string());
        self.http.get_json(&url).await
    }

    /// Every order this replica holds, in number order (paged).
    pub async fn all_local_orders(&self) -> Result<Vec<ReplicaOrder>, CallError> {
        let mut orders = Vec::new();
        loop {
            let page = self
                .local_orders(orders.len() as u64, MAX_LOCAL_ORDERS)
                .await?;
            let done = page.len() < MAX_LOCAL_ORDERS;
            orders.extend(page);
            if done {
                return Ok(orders);
            }
        }
    }

    /// `POST /faults` (only on replicas started with fault injection).
    pub async fn arm_fault(&self, fault: &serde_json::Value) -> Result<(), CallError> {
        self.http
            .post_json::<serde_json::Value, _>(&route_url(&self.base, routes::FAULTS, &[]), fault)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_bounds() {
        assert!(QUANTITY_RULE.contains(&MAX_ORDER_QUANTITY.to_string()));
        assert!(valid_quantity(1) && valid_quantity(u64::from(MAX_ORDER_QUANTITY)));
        assert!(!valid_quantity(0) && !valid_quantity(u64::from(MAX_ORDER_QUANTITY) + 1));
        for name in [
            "Tux",
            "Rubik's Cube",
            "a.b",
            "...",
            &"x".repeat(MAX_TOY_NAME_LEN),
        ] {
            assert!(valid_toy_name(name), "{name:?}");
        }
        let too_long = "x".repeat(MAX_TOY_NAME_LEN + 1);
        for name in ["", ".", "..", "a/b", "/", "line\nbreak", "nul\0", &too_long] {
            assert!(!valid_toy_name(name), "{name:?}");
        }
        assert!(check_order("Tux", 1).is_ok());
        assert_eq!(check_order("..", 1).unwrap_err().status.as_u16(), 400);
        assert_eq!(check_order("Tux", 0).unwrap_err().message, QUANTITY_RULE);
    }
}
