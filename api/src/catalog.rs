//! The catalog's HTTP contract: its routes, the bodies of its endpoints, and
//! [`CatalogClient`], the typed client the front-end, the order leader and the tests call it
//! with. The cache-lease part of the contract (registration and invalidations) is in
//! [`crate::cache_lease`].
//!
//! Stock leaves the catalog in two steps, so that every unit sold belongs to an order: the
//! order leader *reserves* (the stock goes down at once, durably, and caches are invalidated
//! before the answer), and once the Raft log has decided the order's fate it *settles* the
//! reservation: confirmed when the order committed, released (the stock comes back) when the
//! log abandoned it. The catalog lists reservations left pending too long, so whichever replica
//! leads can settle them through the log after any crash.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cache_lease::{LeaseGrant, LeaseRequest};
use crate::client::{CallError, ServiceClient};
use crate::url::route_url;

/// The catalog's routes. The catalog's router and every caller use these templates.
pub mod routes {
    /// `GET`: every toy, with versions.
    pub const PRODUCTS: &str = "/products";
    /// `GET`: one toy, with its version.
    pub const PRODUCT: &str = "/products/{name}";
    /// `POST` (internal): reserve stock for orders, idempotent by reservation id.
    pub const RESERVATIONS: &str = "/reservations";
    /// `GET` (internal): reservations pending for longer than `?older_than_ms=`.
    pub const PENDING: &str = "/reservations/pending";
    /// `POST` (internal): confirm or release reservations.
    pub const SETTLEMENTS: &str = "/settlements";
    /// `GET` (internal): every reservation record the catalog still holds, with its state,
    /// a page at a time (`?after_request_id=&after_attempt=&limit=`): for checkers.
    pub const RESERVATION_RECORDS: &str = "/reservations/records";
    /// `GET` (internal): every toy's stock accounts (initial, restocked, pending, current).
    pub const STOCK: &str = "/stock";
    /// `POST` (internal): a front-end registers for invalidations and renews its cache lease.
    pub const FRONTENDS: &str = "/frontends";
}

/// A toy as the public API shows it (`GET /products/{name}` on the front-end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Product {
    pub name: String,
    pub price: f64,
    pub quantity: u32,
}

/// A toy as the catalog serves it to front-ends: the public fields plus the toy's version.
///
/// `version` grows by one on every change of the toy's stock. A front-end uses it to refuse a
/// cache fill that is older than an invalidation it has already seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionedProduct {
    pub name: String,
    pub price: f64,
    pub quantity: u32,
    pub version: u64,
}

impl VersionedProduct {
    pub fn public(&self) -> Product {
        Product {
            name: self.name.clone(),
            price: self.price,
            quantity: self.quantity,
        }
    }
}

/// Names one reservation: the order's request id, and which attempt at the order it serves.
/// Attempt 0 is an order's first; a retry after the Raft log abandoned attempt `a` reserves
/// again as `a + 1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReservationId {
    pub request_id: String,
    pub attempt: u32,
}

impl fmt::Display for ReservationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.request_id, self.attempt)
    }
}

/// One reservation to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub id: ReservationId,
    pub name: String,
    pub quantity: u32,
}

/// `POST /reservations` on the catalog (internal): several reservations in one call, each
/// handled as if alone. The order leader batches concurrent orders' reservations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationBatch {
    pub reservations: Vec<Reservation>,
}

/// Most items one batch (reservations or settlements) may carry.
pub const MAX_BATCH: usize = 1024;

/// Largest batch body: [`MAX_BATCH`] items of generous size.
pub const MAX_BATCH_BODY: usize = MAX_BATCH * 512;

/// The answer to a [`ReservationBatch`]: one result per reservation, in order.
pub type ReserveAnswers = Vec<Result<ReserveOutcome, crate::ErrorDetail>>;

/// The catalog's answer to a reservation. The same id always gets the same outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ReserveOutcome {
    /// The stock went down; `remaining` is what was left right after this reservation.
    Reserved { remaining: u32, version: u64 },
    /// Not enough stock; nothing changed.
    OutOfStock { available: u32 },
    /// No toy of that name; nothing changed.
    UnknownProduct,
    /// This reservation was already released (the Raft log abandoned it): the order must try
    /// again as its next attempt.
    Released,
    /// This reservation already holds the stock of a committed order (it was confirmed). Never
    /// a fresh reservation: the order exists, or was forgotten past the dedup retention.
    Confirmed,
    /// This reservation is older than half the dedup retention: the Raft log may no longer
    /// remember whether an order used it, so no order may use it now. Nothing changed.
    Expired,
}

/// What the Raft log decided for a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Its order committed: the stock stays sold.
    Confirm,
    /// Its order was abandoned (or never proposed): the stock comes back.
    Release,
}

/// One reservation's settlement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    pub id: ReservationId,
    pub decision: Decision,
}

/// `POST /settlements` on the catalog (internal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementBatch {
    pub settlements: Vec<Settlement>,
}

/// What a settlement found. Settling is idempotent; settling the other way than before is
/// refused (the earlier settlement stands) and reported as what it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettleOutcome {
    Confirmed,
    Released,
    /// A confirmation of a reservation the catalog has no record of.
    Unknown,
}

/// A reservation that is still neither confirmed nor released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingReservation {
    pub id: ReservationId,
    pub name: String,
    pub quantity: u32,
    /// How long ago it was made.
    pub age_ms: u64,
}

/// Where a reservation stands, as `GET /reservations/records` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    /// Stock taken; the Raft log has not decided yet.
    Pending,
    /// Its order committed: the stock stays sold.
    Confirmed,
    /// The Raft log abandoned it: its stock came back (or, released before it was made, it
    /// never took any and never will).
    Released,
    /// Refused (out of stock): it never took stock.
    Refused,
}

/// One reservation record the catalog holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationRecordView {
    pub id: ReservationId,
    /// Empty, with quantity 0, for a release that arrived before its reservation.
    pub name: String,
    pub quantity: u32,
    pub status: ReservationStatus,
    /// Unix milliseconds when it was made (or released, for a release that came first).
    pub made_ms: u64,
}

/// One page of `GET /reservations/records`, in reservation-id order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationRecordsPage {
    pub records: Vec<ReservationRecordView>,
    /// Where the next page starts (pass it as `after_*`); absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<ReservationId>,
    /// Finished records are forgotten after the retention: every record that finished at or
    /// before this Unix millisecond may be gone. Absent when none was ever forgotten, so the
    /// listing holds every reservation ever made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forgotten_through_ms: Option<u64>,
}

/// Most records one page of `GET /reservations/records` carries.
pub const MAX_RECORDS_PAGE: usize = 5_000;

/// A toy's stock accounts (`GET /stock`): `initial + restocked − sold − pending == quantity`,
/// where `sold` is what confirmed reservations took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToyStock {
    pub name: String,
    /// The stock the toy was created with.
    pub initial: u64,
    /// Units added by restocks, in all.
    pub restocked: u64,
    /// Units held by pending reservations.
    pub pending: u64,
    /// Units available now.
    pub quantity: u32,
    pub version: u64,
}

/// The catalog as its callers see it.
#[derive(Debug, Clone)]
pub struct CatalogClient {
    http: ServiceClient,
    base: reqwest::Url,
}

impl CatalogClient {
    pub fn new(base: reqwest::Url, http: ServiceClient) -> Self {
        Self { http, base }
    }

    pub fn base(&self) -> &reqwest::Url {
        &self.base
    }

    /// `GET /health`.
    pub async fn health(&self) -> Result<serde_json::Value, CallError> {
        self.http
            .get_json(&route_url(&self.base, crate::server::routes::HEALTH, &[]))
            .await
    }

    /// `GET /products`.
    pub async fn products(&self) -> Result<Vec<VersionedProduct>, CallError> {
        self.http
            .get_json(&route_url(&self.base, routes::PRODUCTS, &[]))
            .await
    }

    /// `GET /products/{name}`.
    pub async fn product(&self, name: &str) -> Result<VersionedProduct, CallError> {
        self.http
            .get_json(&route_url(&self.base, routes::PRODUCT, &[name]))
            .await
    }

    /// `POST /reservations`: one answer per reservation, in order. `deadline` bounds the call.
    pub async fn reserve(
        &self,
        batch: &ReservationBatch,
        deadline: Option<Duration>,
    ) -> Result<ReserveAnswers, CallError> {
        let mut request = self
            .http
            .post(route_url(&self.base, routes::RESERVATIONS, &[]).as_str())
            .json(batch);
        if let Some(deadline) = deadline {
            request = request.timeout(deadline);
        }
        self.http.call(request).await
    }

    /// `POST /settlements`: one answer per settlement, in order.
    pub async fn settle(&self, batch: &SettlementBatch) -> Result<Vec<SettleOutcome>, CallError> {
        self.http
            .post_json(&route_url(&self.base, routes::SETTLEMENTS, &[]), batch)
            .await
    }

    /// `GET /reservations/pending`: reservations made more than `older_than` ago and not yet
    /// settled, oldest first, at most `limit`.
    pub async fn pending(
        &self,
        older_than: Duration,
        limit: usize,
    ) -> Result<Vec<PendingReservation>, CallError> {
        let mut url = route_url(&self.base, routes::PENDING, &[]);
        url.query_pairs_mut()
            .append_pair("older_than_ms", &older_than.as_millis().to_string())
            .append_pair("limit", &limit.to_string());
        self.http.get_json(&url).await
    }

    /// `GET /reservations/records`: up to `limit` records after `after` (from the first
    /// when `None`), in reservation-id order.
    pub async fn reservation_records(
        &self,
        after: Option<&ReservationId>,
        limit: usize,
    ) -> Result<ReservationRecordsPage, CallError> {
        let mut url = route_url(&self.base, routes::RESERVATION_RECORDS, &[]);
        {
            let mut query = url.query_pairs_mut();
            if let Some(after) = after {
                query
                    .append_pair("after_request_id", &after.request_id)
                    .append_pair("after_attempt", &after.attempt.to_string());
            }
            query.append_pair("limit", &limit.to_string());
        }
        self.http.get_json(&url).await
    }

    /// Every reservation record, paged; `forgotten_through_ms` is the largest any page
    /// reported (records may be forgotten while the pages are read).
    pub async fn all_reservation_records(&self) -> Result<ReservationRecordsPage, CallError> {
        let mut all = ReservationRecordsPage {
            records: Vec::new(),
            next: None,
            forgotten_through_ms: None,
        };
        let mut after = None;
        loop {
            let page = self
                .reservation_records(after.as_ref(), MAX_RECORDS_PAGE)
                .await?;
            all.records.extend(page.records);
            all.forgotten_through_ms = all.forgotten_through_ms.max(page.forgotten_through_ms);
            match page.next {
                // Pages must move forward, or a confused peer would keep this loop going.
                Some(next) if after.as_ref().is_some_and(|after| &next <= after) => {
                    return Err(CallError::Protocol(format!(
                        "{} went backwards: page after {} ends at {next}",
                        routes::RESERVATION_RECORDS,
                        after.map(|a| a.to_string()).unwrap_or_default()
                    )));
                }
                Some(next) => after = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// `GET /stock`.
    pub async fn stock(&self) -> Result<Vec<ToyStock>, CallError> {
        self.http
            .get_json(&route_url(&self.base, routes::STOCK, &[]))
            .await
    }

    /// `POST /frontends`: registers a front-end and renews its cache lease.
    pub async fn renew_lease(&self, request: &LeaseRequest) -> Result<LeaseGrant, CallError> {
        self.http
            .post_json(&route_url(&self.base, routes::FRONTENDS, &[]), request)
            .await
    }
}
