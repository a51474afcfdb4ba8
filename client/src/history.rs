//! `--history FILE`: one JSON line per operation, in the checker's format
//! ([`checker::history`]), for `toystore-check` to verify the whole run afterwards.
//!
//! Times are Unix epoch milliseconds (wall clock), so a fault injected by another process
//! lines up with the operations it hit. An order that got no usable answer is `unknown`: it
//! may have taken effect. Every operation is written when it completes, by whichever session
//! completed it; a mutex around one buffered file is plenty for a handful of sessions.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use api::client::CallError;
use checker::history::{Event, Order, OrderRecord, Outcome, Query, Read, Reuse, write_event};
use parking_lot::Mutex;

use crate::error::ClientError;

/// Unix epoch milliseconds, with microseconds.
pub fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// How a failed request ended, as the checker counts it: a refusal (4xx) is definite, anything
/// else (503, a timeout, a lost connection, a garbled answer) leaves the effect unknown.
pub fn outcome_of(failure: &CallError) -> Outcome {
    match failure.status() {
        Some(status) if status.is_client_error() => Outcome::Fail,
        _ => Outcome::Unknown,
    }
}

/// Where a run's history goes; cloning shares the file. `None` inside when no history was
/// asked for, so recording costs nothing then.
#[derive(Clone, Default)]
pub struct History {
    out: Option<Arc<Mutex<BufWriter<File>>>>,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.out.is_some() {
            "History(recording)"
        } else {
            "History(off)"
        })
    }
}

impl History {
    /// A history written to `path` (created or emptied now).
    pub fn create(path: &Path) -> Result<Self, ClientError> {
        let file = File::create(path).map_err(|err| ClientError::write(path, err))?;
        Ok(Self {
            out: Some(Arc::new(Mutex::new(BufWriter::new(file)))),
        })
    }

    fn record(&self, event: Event) {
        if let Some(out) = &self.out {
            let mut out = out.lock();
            // A history that cannot be written is reported at the end by `finish`.
            let _ = write_event(&mut *out, &event);
        }
    }

    /// A product query.
    pub fn query(
        &self,
        session: u64,
        invoke: f64,
        toy: &str,
        answer: Result<(u32, Option<u64>), &CallError>,
    ) {
        if self.out.is_none() {
            return;
        }
        let complete = unix_ms();
        let event = match answer {
            Ok((quantity, version)) => Query {
                session,
                invoke,
                complete,
                outcome: if version.is_some() {
                    Outcome::Ok
                } else {
                    // Without a version the answer cannot be checked: record it as unknown.
                    Outcome::Unknown
                },
                toy: toy.to_string(),
                quantity: version.map(|_| quantity),
                version,
                error: version
                    .is_none()
                    .then(|| "no version in the answer".to_string()),
            },
            Err(failure) => Query {
                session,
                invoke,
                complete,
                outcome: outcome_of(failure),
                toy: toy.to_string(),
                quantity: None,
                version: None,
                error: Some(failure.to_string()),
            },
        };
        self.record(Event::Query(event));
    }

    /// An order, with every retry it took; `reuse` when it deliberately re-sent a key
    /// answered before (a key-reuse session).
    #[allow(clippy::too_many_arguments)]
    pub fn order(
        &self,
        session: u64,
        invoke: f64,
        key: &str,
        toy: &str,
        quantity: u32,
        answer: Result<u64, &CallError>,
        reuse: Option<Reuse>,
    ) {
        if self.out.is_none() {
            return;
        }
        let (outcome, number, error) = match answer {
            Ok(number) => (Outcome::Ok, Some(number), None),
            Err(failure) => (outcome_of(failure), None, Some(failure.to_string())),
        };
        // The checker judges a refusal of a reused key by its status.
        let status = answer
            .err()
            .and_then(CallError::status)
            .map(|status| status.as_u16());
        self.record(Event::Order(Order {
            session,
            invoke,
            complete: unix_ms(),
            outcome,
            key: key.to_string(),
            toy: toy.to_string(),
            quantity,
            number,
            error,
            status,
            reuse,
        }));
    }

    /// An order lookup: `Ok(None)` is a 404.
    pub fn read(
        &self,
        session: u64,
        invoke: f64,
        number: u64,
        answer: Result<Option<(&str, u32)>, &CallError>,
    ) {
        if self.out.is_none() {
            return;
        }
        let (outcome, found, error) = match answer {
            Ok(found) => (
                Outcome::Ok,
                Some(found.map(|(name, quantity)| OrderRecord {
                    name: name.to_string(),
                    quantity,
                })),
                None,
            ),
            Err(failure) => (Outcome::Unknown, None, Some(failure.to_string())),
        };
        self.record(Event::Read(Read {
            session,
            invoke,
            complete: unix_ms(),
            outcome,
            number,
            found,
            error,
        }));
    }

    /// Flushes the file; an error here means the history is incomplete.
    pub fn finish(&self, path: &Path) -> Result<(), ClientError> {
        if let Some(out) = &self.out {
            out.lock()
                .flush()
                .map_err(|err| ClientError::write(path, err))?;
        }
        Ok(())
    }
}
