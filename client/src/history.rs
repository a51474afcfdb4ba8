//! `--history FILE`: one JSON line per operation, in the checker's format
//! ([`checker::history`]), for `toystore-check` to verify the whole run afterwards.
//!
//! Times are Unix epoch milliseconds, so a fault injected by another process lines up with
//! the operations it hit; but they are read from one wall-clock anchor taken once plus the
//! monotonic clock since, so a wall-clock step during the run (NTP, an operator) can neither
//! reorder two operations nor make one end before it began. An order that got no usable
//! answer is `unknown`: it may have taken effect. A refusal (a 4xx with its reason) is `fail`,
//! with the reason the store gave. Every operation is written when it completes, by whichever
//! session completed it; a mutex around one buffered file is plenty for a handful of sessions.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use api::client::CallError;
use api::order::{OrderPlaced, OrderRecord as PlacedRecord};
use checker::history::{Event, Order, OrderRecord, Outcome, Query, Read, Reuse, write_event};
use parking_lot::Mutex;

use crate::error::ClientError;

/// The wall clock read once, and the monotonic instant it was read at.
fn anchor() -> &'static (Instant, f64) {
    static ANCHOR: OnceLock<(Instant, f64)> = OnceLock::new();
    ANCHOR.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        (Instant::now(), wall)
    })
}

/// Unix epoch milliseconds, with microseconds: the anchor's wall-clock time plus the
/// monotonic time since it, so successive readings never go backwards.
pub fn unix_ms() -> f64 {
    let (at, wall) = anchor();
    wall + at.elapsed().as_secs_f64() * 1000.0
}

/// How a failed request ended, as the checker counts it: a refusal (4xx) is definite, anything
/// else (503, a timeout, a lost connection, a garbled answer) leaves the effect unknown.
pub fn outcome_of(failure: &CallError) -> Outcome {
    match failure.status() {
        Some(status) if status.is_client_error() => Outcome::Fail,
        _ => Outcome::Unknown,
    }
}

/// The reason of a refusal as the envelope spells it (`out_of_stock`, `request_id_expired`,
/// ...), for the checker to judge refusals by.
pub fn reason_of(failure: &CallError) -> Option<String> {
    let reason = failure.reason()?;
    serde_json::to_value(reason)
        .ok()?
        .as_str()
        .map(str::to_string)
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
            // An answer without a version is still an answer: recorded as one, the checker
            // reports the missing ETag as the protocol error it is.
            Ok((quantity, version)) => Query {
                session,
                invoke,
                complete,
                outcome: Outcome::Ok,
                toy: toy.to_string(),
                quantity: Some(quantity),
                version,
                error: version
                    .is_none()
                    .then(|| "the answer carried no ETag".to_string()),
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
        answer: Result<&OrderPlaced, &CallError>,
        reuse: Option<Reuse>,
    ) {
        if self.out.is_none() {
            return;
        }
        let (outcome, number, stock_version, error) = match answer {
            Ok(placed) => (
                Outcome::Ok,
                Some(placed.order_number),
                placed.stock_version,
                None,
            ),
            Err(failure) => (outcome_of(failure), None, None, Some(failure.to_string())),
        };
        // The checker judges a refusal by its reason (and reports its status).
        let failure = answer.err();
        let status = failure
            .and_then(CallError::status)
            .map(|status| status.as_u16());
        let reason = failure
            .filter(|f| outcome_of(f) == Outcome::Fail)
            .and_then(reason_of);
        self.record(Event::Order(Order {
            session,
            invoke,
            complete: unix_ms(),
            outcome,
            key: key.to_string(),
            toy: toy.to_string(),
            quantity,
            number,
            stock_version,
            error,
            status,
            reason,
            reuse,
        }));
    }

    /// An order lookup: `Ok(None)` is a 404. The answer's own number is kept: it must be the
    /// number asked for.
    pub fn read(
        &self,
        session: u64,
        invoke: f64,
        number: u64,
        answer: Result<Option<&PlacedRecord>, &CallError>,
    ) {
        if self.out.is_none() {
            return;
        }
        let (outcome, found, error) = match answer {
            Ok(found) => (
                Outcome::Ok,
                Some(found.map(|record| OrderRecord {
                    name: record.name.clone(),
                    quantity: record.quantity,
                    number: Some(record.number),
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

#[cfg(test)]
mod tests {
    use api::ApiError;
    use api::Reason;
    use axum::http::StatusCode;
    use checker::history::parse_history;

    use super::*;

    fn recorded(write: impl FnOnce(&History)) -> Vec<Event> {
        let dir = tempfile_dir();
        let path = dir.join("history.jsonl");
        let history = History::create(&path).unwrap();
        write(&history);
        history.finish(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        parse_history(text.as_bytes()).unwrap()
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "client-history-{}-{}",
            std::process::id(),
            unix_ms()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn answers_refusals_and_versions_are_recorded_as_they_came() {
        let expired = CallError::Api(
            ApiError::new(StatusCode::CONFLICT, "used too long ago")
                .with_reason(Reason::RequestIdExpired),
        );
        let placed = OrderPlaced {
            order_number: 4,
            stock_version: Some(17),
        };
        let record = PlacedRecord {
            number: 5,
            name: "Tux".into(),
            quantity: 1,
        };
        let events = recorded(|history| {
            history.query(1, unix_ms(), "Tux", Ok((3, None)));
            history.order(1, unix_ms(), "k", "Tux", 1, Ok(&placed), None);
            history.order(1, unix_ms(), "k", "Tux", 1, Err(&expired), None);
            history.read(1, unix_ms(), 4, Ok(Some(&record)));
        });
        // An answer without an ETag is an answer, for the checker to flag.
        assert!(matches!(&events[0], Event::Query(q)
            if q.outcome == Outcome::Ok && q.quantity == Some(3) && q.version.is_none()));
        assert!(matches!(&events[1], Event::Order(o)
            if o.number == Some(4) && o.stock_version == Some(17)));
        assert!(matches!(&events[2], Event::Order(o)
            if o.outcome == Outcome::Fail && o.status == Some(409)
                && o.reason.as_deref() == Some("request_id_expired")));
        // The answer's own number is kept: it differs from the number asked for here.
        assert!(matches!(&events[3], Event::Read(r)
            if matches!(&r.found, Some(Some(found)) if found.number == Some(5))));
    }

    #[test]
    fn times_never_go_backwards() {
        let mut last = unix_ms();
        for _ in 0..1000 {
            let now = unix_ms();
            assert!(now >= last);
            last = now;
        }
    }
}
