//! The final state file: what every order replica and the catalog hold once the run is over.
//!
//! A script reads every replica's orders and the catalog's stock after the store settled and
//! writes one JSON object ([`FinalState`]); the checker compares it with the history.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Error;

/// One order as a replica holds it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StoredOrder {
    pub number: u64,
    /// The order's `Idempotency-Key`; absent for orders placed without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub name: String,
    pub quantity: u32,
    /// Which attempt at the request id's reservation the order used (0 for an order's first);
    /// absent when the replicas do not report it. Replicas must agree on it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
}

/// Everything one order-service replica holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Replica {
    pub id: u64,
    /// Every order, in number order.
    pub orders: Vec<StoredOrder>,
}

/// One toy's stock accounting in the catalog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToyStock {
    pub name: String,
    /// Units the toy was created with.
    pub initial: u64,
    /// Units added by restocks, in total.
    pub restocked: u64,
    /// Units in stock now (signed, so a broken store's negative stock is reported, not refused).
    pub quantity: i64,
    /// Units held by reservations not yet settled; 0 once the store settled.
    pub pending: i64,
}

/// Where a reservation stands in the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    /// Stock held; not decided.
    Pending,
    /// Sold: an order holds it.
    Confirmed,
    /// Given back (or never taken): no order may hold it.
    Released,
    /// Refused for lack of stock: it never took any.
    Refused,
}

/// One reservation the catalog holds: the stock taken for one attempt at one request id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reservation {
    pub request_id: String,
    pub attempt: u32,
    pub name: String,
    pub quantity: u32,
    pub status: ReservationStatus,
}

/// The catalog's part of the final state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogState {
    pub toys: Vec<ToyStock>,
    /// Every reservation record the catalog still holds. `None` when the state was written
    /// without them: check `reservations-match` then reports that it cannot match anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservations: Option<Vec<Reservation>>,
    /// The catalog forgets finished records after its retention: any record that finished at
    /// or before this Unix millisecond may be missing. `None`: none was ever forgotten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forgotten_through_ms: Option<f64>,
}

/// The whole final state file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinalState {
    pub replicas: Vec<Replica>,
    pub catalog: CatalogState,
}

/// Parses a final state from JSON text.
pub fn parse_state(text: &str) -> Result<FinalState, Error> {
    serde_json::from_str(text).map_err(|e| Error::State(e.to_string()))
}

/// Reads a final state file.
pub fn read_state(path: &Path) -> Result<FinalState, Error> {
    let text = fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_state(&text).map_err(|e| Error::InFile {
        path: path.to_path_buf(),
        source: Box::new(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example_and_ignores_unknown_fields() {
        let text = r#"{"replicas":[{"id":1,"applied":7,"orders":[{"number":0,"request_id":"k-1","name":"Tux","quantity":1}]}],
            "catalog":{"toys":[{"name":"Tux","initial":100,"restocked":200,"quantity":57,"pending":0,"price":25.99}]}}"#;
        let state = parse_state(text).unwrap();
        assert_eq!(
            state.replicas[0].orders[0].request_id.as_deref(),
            Some("k-1")
        );
        assert_eq!(state.catalog.toys[0].restocked, 200);
        assert_eq!(state.catalog.toys[0].quantity, 57);
    }

    #[test]
    fn rejects_a_state_without_catalog() {
        assert!(matches!(
            parse_state(r#"{"replicas":[]}"#),
            Err(Error::State(_))
        ));
    }
}
