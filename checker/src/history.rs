//! The history file: one JSON object per completed operation (JSON Lines), its Rust types,
//! and reading / writing it.
//!
//! The load client builds [`Event`]s and writes them with [`write_event`]; the checker reads
//! them back with [`read_history`] / [`parse_history`]. Unknown fields are ignored so older
//! checkers read newer histories; a line that is not a valid event is an error naming its line.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use crate::Error;

/// How an operation ended, as the client saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A definite, usable answer.
    Ok,
    /// A definite refusal (for an order: a 4xx; the order must not exist).
    Fail,
    /// No usable answer (503, timeout, connection lost): the effect may or may not have happened.
    Unknown,
}

impl Outcome {
    /// The name used in the file (`ok`, `fail`, `unknown`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Unknown => "unknown",
        }
    }
}

/// `GET /products/{toy}` through the front-end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Query {
    pub session: u64,
    /// Unix epoch milliseconds when the request was sent.
    pub invoke: f64,
    /// Unix epoch milliseconds when the answer (or the give-up) came.
    pub complete: f64,
    pub outcome: Outcome,
    pub toy: String,
    /// Units in stock, on `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u32>,
    /// The catalog's version of this toy's stock (one more per stock change), from the
    /// answer's `ETag`, on `ok`. An `ok` answer without one is a protocol error the checker
    /// reports (`error` then says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /orders` with an `Idempotency-Key`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub session: u64,
    pub invoke: f64,
    pub complete: f64,
    pub outcome: Outcome,
    /// The `Idempotency-Key` header: the order's request id in the store.
    pub key: String,
    pub toy: String,
    pub quantity: u32,
    /// The order number, on `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u64>,
    /// On `ok`: the version of the toy's stock the order's reservation produced, when the
    /// answer says (not when it came from the store's memory of the key). Every query of the
    /// toy invoked after this answer must show at least this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock_version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The HTTP status of the last answer, on `fail`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// On `fail`: why the store refused, as its answer said (`out_of_stock`,
    /// `request_id_expired`, `request_id_reused`, `unknown_toy`, ...). Refusals are judged by
    /// it, never by their message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Present when this order deliberately re-sent a key whose order was answered before
    /// (the client's key-reuse sessions): what the store must or may answer depends on how
    /// long ago that order was placed, compared with its dedup retention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse: Option<Reuse>,
}

/// How far inside the dedup retention a re-send must be for the store to have to remember its
/// key: the store's and the client's clocks, and the store's own steps, may each be a little
/// off, so only a re-send that ends this long before the retention runs out must be deduplicated.
pub const REUSE_MARGIN_MS: f64 = 2_000.0;

/// A deliberate re-send of an `Idempotency-Key` (an [`Order`] with `reuse`): the key's last
/// `ok` answer was order #`number`, placed some time before. All durations are measured by the
/// client's monotonic clock, so a wall-clock step cannot move a re-send across the retention.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reuse {
    /// The number the key's last `ok` answer gave: what a deduplicated re-send answers.
    pub number: u64,
    /// The store's dedup retention (`TOYSTORE_DEDUP_RETENTION_SECS`), in ms, as the client
    /// was told it.
    pub retention_ms: f64,
    /// From the invoke of the earliest operation that may have placed order #`number` (the
    /// first one sent with this key after its previous `ok` answer) to this re-send's
    /// completion. The store cannot have stamped the order before that invoke nor answered
    /// after that completion, so this bounds the key's age whenever the store looked at it.
    pub placed_ms: f64,
    /// From the key's last `ok` answer to this re-send's invoke (for reports: a re-send more
    /// than the retention plus [`REUSE_MARGIN_MS`] after it is "after the window").
    pub answered_ms: f64,
}

impl Reuse {
    /// True when the store had to remember the key throughout this re-send: its order was
    /// placed at most `retention - REUSE_MARGIN_MS` before the answer, so the only right
    /// answer is the same number (or no answer at all).
    pub fn must_dedup(&self) -> bool {
        self.placed_ms + REUSE_MARGIN_MS <= self.retention_ms
    }

    /// Where the re-send fell: `within` the window (must deduplicate), `after` it (more than
    /// the retention plus the margin after the last answer), or `between` the two bounds.
    pub fn window(&self) -> &'static str {
        if self.must_dedup() {
            "within"
        } else if self.answered_ms > self.retention_ms + REUSE_MARGIN_MS {
            "after"
        } else {
            "between"
        }
    }

    fn validate(&self) -> Result<(), String> {
        let times = [self.retention_ms, self.placed_ms, self.answered_ms];
        if times.iter().any(|t| !t.is_finite() || *t < 0.0) {
            return Err("reuse times must be finite and not negative".into());
        }
        Ok(())
    }
}

/// What `GET /orders/{n}` returned.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OrderRecord {
    pub name: String,
    pub quantity: u32,
    /// The number the answer names: it must be the number asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u64>,
}

impl OrderRecord {
    /// Whether two records describe the same order (toy and quantity; the number is checked
    /// against the read on its own).
    pub fn same_order(&self, other: &OrderRecord) -> bool {
        self.name == other.name && self.quantity == other.quantity
    }
}

/// `GET /orders/{number}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Read {
    pub session: u64,
    pub invoke: f64,
    pub complete: f64,
    pub outcome: Outcome,
    pub number: u64,
    /// On `ok`: `Some(Some(record))` when found, `Some(None)` (`"found":null`) for a 404.
    /// `None` (field absent) on `fail` / `unknown`.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub found: Option<Option<OrderRecord>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Whether a nemesis line opens or closes a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Start,
    Heal,
}

/// A fault injected by the test harness (kill -9, partition, pause, ...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Nemesis {
    pub invoke: f64,
    pub complete: f64,
    /// e.g. `kill-leader`, `partition`, `pause`.
    pub fault: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub phase: Phase,
}

/// One line of the history file, tagged by its `op` field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Event {
    Query(Query),
    Order(Order),
    Read(Read),
    Nemesis(Nemesis),
}

impl Event {
    /// The operation's name as in the file (`query`, `order`, `read`, `nemesis`).
    pub fn op_name(&self) -> &'static str {
        match self {
            Event::Query(_) => "query",
            Event::Order(_) => "order",
            Event::Read(_) => "read",
            Event::Nemesis(_) => "nemesis",
        }
    }

    /// The client session, absent on nemesis events.
    pub fn session(&self) -> Option<u64> {
        match self {
            Event::Query(q) => Some(q.session),
            Event::Order(o) => Some(o.session),
            Event::Read(r) => Some(r.session),
            Event::Nemesis(_) => None,
        }
    }

    /// The outcome, absent on nemesis events.
    pub fn outcome(&self) -> Option<Outcome> {
        match self {
            Event::Query(q) => Some(q.outcome),
            Event::Order(o) => Some(o.outcome),
            Event::Read(r) => Some(r.outcome),
            Event::Nemesis(_) => None,
        }
    }

    pub fn invoke(&self) -> f64 {
        match self {
            Event::Query(q) => q.invoke,
            Event::Order(o) => o.invoke,
            Event::Read(r) => r.invoke,
            Event::Nemesis(n) => n.invoke,
        }
    }

    pub fn complete(&self) -> f64 {
        match self {
            Event::Query(q) => q.complete,
            Event::Order(o) => o.complete,
            Event::Read(r) => r.complete,
            Event::Nemesis(n) => n.complete,
        }
    }

    /// A short human description, used in reports and tooltips.
    pub fn describe(&self) -> String {
        match self {
            Event::Query(q) => match (q.outcome, q.quantity, q.version) {
                (Outcome::Ok, Some(quantity), Some(version)) => format!(
                    "session {} query {:?} ok: quantity {quantity}, version {version}",
                    q.session, q.toy
                ),
                (Outcome::Ok, Some(quantity), None) => format!(
                    "session {} query {:?} ok: quantity {quantity}, no version",
                    q.session, q.toy
                ),
                _ => format!(
                    "session {} query {:?} {}",
                    q.session,
                    q.toy,
                    q.outcome.as_str()
                ),
            },
            Event::Order(o) => {
                let number = o.number.map(|n| format!(" → #{n}")).unwrap_or_default();
                let version = o
                    .stock_version
                    .map(|v| format!(" (stock version {v})"))
                    .unwrap_or_default();
                let status = o.status.map(|s| format!(" {s}")).unwrap_or_default();
                let reason = o
                    .reason
                    .as_deref()
                    .map(|r| format!(" {r}"))
                    .unwrap_or_default();
                let reuse = o
                    .reuse
                    .as_ref()
                    .map(|r| {
                        format!(
                            " (re-send of #{} {} the window: placed ≤{:.1}s, answered {:.1}s before, retention {:.1}s)",
                            r.number,
                            r.window(),
                            r.placed_ms / 1000.0,
                            r.answered_ms / 1000.0,
                            r.retention_ms / 1000.0
                        )
                    })
                    .unwrap_or_default();
                format!(
                    "session {} order {}×{:?} key {} {}{status}{reason}{number}{version}{reuse}",
                    o.session,
                    o.quantity,
                    o.toy,
                    o.key,
                    o.outcome.as_str()
                )
            }
            Event::Read(r) => {
                let found = match &r.found {
                    Some(Some(rec)) => match rec.number {
                        Some(n) if n != r.number => {
                            format!(": {}×{:?} named #{n}", rec.quantity, rec.name)
                        }
                        _ => format!(": {}×{:?}", rec.quantity, rec.name),
                    },
                    Some(None) => ": not found".to_string(),
                    None => String::new(),
                };
                format!(
                    "session {} read #{} {}{found}",
                    r.session,
                    r.number,
                    r.outcome.as_str()
                )
            }
            Event::Nemesis(n) => {
                let phase = match n.phase {
                    Phase::Start => "start",
                    Phase::Heal => "heal",
                };
                match &n.target {
                    Some(target) => format!("nemesis {} {target} {phase}", n.fault),
                    None => format!("nemesis {} {phase}", n.fault),
                }
            }
        }
    }

    /// Checks what the types cannot say: times in order, `ok` answers carrying their data.
    fn validate(&self) -> Result<(), String> {
        let (invoke, complete) = (self.invoke(), self.complete());
        if !invoke.is_finite() || !complete.is_finite() {
            return Err("invoke and complete must be finite numbers".into());
        }
        if complete < invoke {
            return Err(format!("complete {complete} is before invoke {invoke}"));
        }
        match self {
            // A missing version is the store's fault, not the file's: check `query-answers`
            // reports it.
            Event::Query(q) if q.outcome == Outcome::Ok && q.quantity.is_none() => {
                Err("an ok query needs its quantity".into())
            }
            Event::Order(o) if o.outcome == Outcome::Ok && o.number.is_none() => {
                Err("an ok order needs its number".into())
            }
            Event::Order(Order {
                reuse: Some(reuse), ..
            }) => reuse.validate(),
            Event::Read(r) if r.outcome == Outcome::Ok && r.found.is_none() => {
                Err("an ok read needs found (an order or null)".into())
            }
            _ => Ok(()),
        }
    }
}

/// Maps a present field to `Some(..)` even when it is `null`, so `"found":null` (404)
/// differs from an absent `found` (no answer).
fn present_or_null<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<OrderRecord>>, D::Error> {
    Option::<OrderRecord>::deserialize(deserializer).map(Some)
}

/// Parses a history from JSON Lines. Blank lines are skipped; the events keep file order.
pub fn parse_history<R: BufRead>(reader: R) -> Result<Vec<Event>, Error> {
    let mut events = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line_no = index + 1;
        let line = line.map_err(|e| Error::HistoryLine {
            line: line_no,
            message: e.to_string(),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let event: Event = serde_json::from_str(&line).map_err(|e| Error::HistoryLine {
            line: line_no,
            message: e.to_string(),
        })?;
        event.validate().map_err(|message| Error::HistoryLine {
            line: line_no,
            message,
        })?;
        events.push(event);
    }
    Ok(events)
}

/// Reads a history file (see [`parse_history`]).
pub fn read_history(path: &Path) -> Result<Vec<Event>, Error> {
    let file = File::open(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_history(BufReader::new(file)).map_err(|e| Error::InFile {
        path: path.to_path_buf(),
        source: Box::new(e),
    })
}

/// Writes one event as one line (the client calls this after every completed operation).
pub fn write_event<W: Write>(mut out: W, event: &Event) -> io::Result<()> {
    serde_json::to_writer(&mut out, event)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_op_and_ignores_unknown_fields() {
        let text = r#"
{"session":3,"op":"query","invoke":1.5,"complete":2,"outcome":"ok","toy":"Tux","quantity":97,"version":12,"node":"x"}
{"session":3,"op":"query","invoke":1,"complete":2,"outcome":"unknown","toy":"Tux","error":"timeout"}
{"session":3,"op":"order","invoke":1,"complete":2,"outcome":"ok","key":"k-1","toy":"Tux","quantity":1,"number":41}
{"session":3,"op":"read","invoke":1,"complete":2,"outcome":"ok","number":41,"found":{"name":"Tux","quantity":1,"number":41}}
{"session":3,"op":"read","invoke":1,"complete":2,"outcome":"ok","number":42,"found":null}
{"session":3,"op":"read","invoke":1,"complete":2,"outcome":"fail","number":42,"error":"503"}
{"op":"nemesis","invoke":1,"complete":2,"fault":"kill-leader","target":"node-2","phase":"start"}
"#;
        let events = parse_history(text.as_bytes()).unwrap();
        assert_eq!(events.len(), 7);
        assert!(matches!(&events[0], Event::Query(q) if q.version == Some(12) && q.invoke == 1.5));
        assert!(matches!(&events[2], Event::Order(o) if o.number == Some(41) && o.key == "k-1"));
        assert!(matches!(&events[3], Event::Read(r)
            if r.found == Some(Some(OrderRecord { name: "Tux".into(), quantity: 1, number: Some(41) }))));
        assert!(matches!(&events[4], Event::Read(r) if r.found == Some(None)));
        assert!(matches!(&events[5], Event::Read(r) if r.found.is_none()));
        assert!(matches!(&events[6], Event::Nemesis(n) if n.phase == Phase::Start));
    }

    #[test]
    fn events_round_trip_through_write_event() {
        let events = vec![
            Event::Read(Read {
                session: 1,
                invoke: 10.0,
                complete: 11.0,
                outcome: Outcome::Ok,
                number: 4,
                found: Some(None),
                error: None,
            }),
            Event::Order(Order {
                session: 2,
                invoke: 10.0,
                complete: 12.5,
                outcome: Outcome::Unknown,
                key: "k".into(),
                toy: "Lego Set".into(),
                quantity: 2,
                number: None,
                stock_version: None,
                error: Some("timeout".into()),
                status: None,
                reason: None,
                reuse: Some(Reuse {
                    number: 3,
                    retention_ms: 20_000.0,
                    placed_ms: 25_000.5,
                    answered_ms: 24_000.0,
                }),
            }),
        ];
        let mut buffer = Vec::new();
        for event in &events {
            write_event(&mut buffer, event).unwrap();
        }
        let text = String::from_utf8(buffer).unwrap();
        assert!(text.contains(r#""found":null"#), "{text}");
        assert!(!text.contains(r#""number":null"#), "{text}");
        assert_eq!(parse_history(text.as_bytes()).unwrap(), events);
    }

    #[test]
    fn a_reuse_is_within_between_or_after_the_window() {
        let reuse = |placed_ms, answered_ms| Reuse {
            number: 1,
            retention_ms: 20_000.0,
            placed_ms,
            answered_ms,
        };
        assert_eq!(reuse(18_000.0, 17_000.0).window(), "within");
        assert!(reuse(18_000.0, 17_000.0).must_dedup());
        // The order may have been placed long before its answer (a retry after a failover):
        // the window runs from then, not from the answer.
        assert_eq!(reuse(18_001.0, 5_000.0).window(), "between");
        assert!(!reuse(18_001.0, 5_000.0).must_dedup());
        assert_eq!(reuse(23_000.0, 22_001.0).window(), "after");
    }

    #[test]
    fn malformed_lines_name_their_line_number() {
        let cases = [
            "{\"op\":\"query\"}\n",
            "not json\n",
            r#"{"session":1,"op":"teleport","invoke":1,"complete":2}"#,
            r#"{"session":1,"op":"query","invoke":1,"complete":2,"outcome":"ok","toy":"Tux","version":3}"#,
            r#"{"session":1,"op":"order","invoke":3,"complete":2,"outcome":"fail","key":"k","toy":"T","quantity":1}"#,
            r#"{"session":1,"op":"read","invoke":1,"complete":2,"outcome":"ok","number":1}"#,
            r#"{"session":1,"op":"order","invoke":1,"complete":2,"outcome":"ok","key":"k","toy":"T","quantity":1}"#,
            r#"{"session":1,"op":"order","invoke":1,"complete":2,"outcome":"unknown","key":"k","toy":"T","quantity":1,"reuse":{"number":1,"retention_ms":20000,"placed_ms":-1,"answered_ms":0}}"#,
        ];
        for case in cases {
            let text = format!("\n{case}");
            match parse_history(text.as_bytes()) {
                Err(Error::HistoryLine { line, .. }) => assert_eq!(line, 2, "{case}"),
                other => panic!("{case}: expected a line error, got {other:?}"),
            }
        }
    }
}
