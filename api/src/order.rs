//! Bodies of the order endpoints (front-end and order nodes) and of the status pages.

use serde::{Deserialize, Serialize};

/// Header a client may set on `POST /orders` so that retries return the same order.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Longest accepted idempotency key / request id, in bytes.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// What [`valid_request_id`] accepts, as a sentence for error messages.
pub const REQUEST_ID_RULE: &str =
    "a request id (Idempotency-Key) must be 1 to 128 visible ASCII characters";

/// Request ids (and idempotency keys) are 1 to [`MAX_REQUEST_ID_LEN`] visible ASCII
/// characters, the same rule at every service that stores them.
pub fn valid_request_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The words every out-of-stock refusal (400) carries in its message. The envelope has no
/// field for a reason, so clients tell "out of stock" from other 400s by these words.
pub const OUT_OF_STOCK: &str = "is out of stock";

/// Whether an error message is an out-of-stock refusal.
pub fn is_out_of_stock(message: &str) -> bool {
    message.contains(OUT_OF_STOCK)
}

/// The `{number}` of `GET /orders/{number}`, or the 400 every service answers for it.
pub fn parse_order_number(text: &str) -> Result<u64, crate::ApiError> {
    text.parse().map_err(|_| {
        crate::ApiError::bad_request(format!(
            "order number {text:?} is not a non-negative integer"
        ))
    })
}

/// `POST /orders` on the front-end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    pub name: String,
    pub quantity: i64,
}

/// `POST /orders` on an order node (internal): the front-end's order with its request id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceOrder {
    pub request_id: String,
    pub name: String,
    pub quantity: u32,
}

/// The answer to a successful `POST /orders`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order_number: u64,
}

/// An order as `GET /orders/{number}` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub number: u64,
    pub name: String,
    pub quantity: u32,
}

/// `POST /leader` on an order node (internal): the front-end's leader selection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderNotice {
    pub leader_id: u64,
}

/// `GET /status` on an order node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub id: u64,
    /// `leader`, `follower`, `candidate` or `learner`.
    pub role: String,
    pub term: u64,
    /// The Raft leader this node currently knows of.
    pub leader: Option<u64>,
    pub last_log_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// The node the front-end selected (`POST /leader`), if any told this node.
    pub selected_leader: Option<u64>,
    /// Number of orders in the state machine.
    pub orders: u64,
    /// SHA-256 chain over all orders in number order, hex.
    pub digest: String,
    /// Log entries this node received from a leader since it started.
    pub entries_received: u64,
    /// Snapshots this node installed since it started.
    pub snapshots_installed: u64,
}

/// `GET /status` on the front-end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrontendStatus {
    pub selected_leader: Option<u64>,
    pub reselections: u64,
    pub cache: CacheStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheStatus {
    pub capacity: usize,
    pub entries: usize,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub invalidations: u64,
    /// Whether the front-end currently holds a cache lease from the catalog.
    pub lease_valid: bool,
}
