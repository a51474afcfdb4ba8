//! Fault points for tests and chaos runs, reachable only on a replica started with
//! `--fault-injection`:
//!
//! - crash points, armed at run time through `POST /faults`;
//! - broken behaviours, armed at start with `--break KIND`: the replica breaks one of the
//!   store's promises on purpose, so that `cluster/verify.sh --break KIND` can show that the
//!   checker notices (a verification that never fails proves nothing). Each one is a single
//!   call at the place the correct code runs, and does nothing unless armed.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::store::OrderReader;

/// A promise a replica can be told to break (`--break`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Break {
    /// Order reads (`GET /orders/N`) are answered from this replica's own state machine: no
    /// read index on the leader, no forwarding from a follower. A follower (or a deposed leader) that has
    /// not applied an acknowledged order answers 404: a stale read (checker:
    /// `linearizable-reads`).
    LocalRead,
    /// An order is answered as soon as the catalog reserved its stock, with the number it is
    /// expected to get, while its Raft entry is still being written. A write lost in a
    /// failover, or numbered otherwise, leaves an acknowledgement the log does not hold
    /// (checker: `acked-orders-durable`).
    AckBeforeCommit,
}

/// The armed fault points. Clones share them.
#[derive(Clone, Default)]
pub struct Faults {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    crash_after_reserve: Mutex<Option<String>>,
    /// Armed `local-read`.
    local_read: bool,
    /// Armed `ack-before-commit`.
    early_ack: Option<EarlyAck>,
}

/// Numbers for orders answered before their entry commits.
struct EarlyAck {
    reader: OrderReader,
    /// The next number to hand out, unless the state machine is already past it.
    next: Mutex<u64>,
}

impl EarlyAck {
    /// The number the next order would get if every order answered early so far commits in
    /// the order it was answered: what a leader that acknowledges before the commit says.
    fn guess(&self) -> u64 {
        let applied = self.reader.summary().counters.next_number;
        let mut next = self.next.lock();
        let number = (*next).max(applied);
        *next = number + 1;
        number
    }
}

impl Faults {
    /// The fault points of a replica started with `--fault-injection`, with `breaks` armed.
    pub fn new(breaks: &[Break], reader: &OrderReader) -> Self {
        for kind in breaks {
            tracing::warn!(
                ?kind,
                "fault injection: this replica breaks a promise on purpose"
            );
        }
        Self {
            inner: Arc::new(Inner {
                crash_after_reserve: Mutex::new(None),
                local_read: breaks.contains(&Break::LocalRead),
                early_ack: breaks.contains(&Break::AckBeforeCommit).then(|| EarlyAck {
                    reader: reader.clone(),
                    next: Mutex::new(0),
                }),
            }),
        }
    }

    /// Arms a crash (abort, as kill -9 would) after the catalog reservation of `request_id`.
    pub fn arm_crash_after_reserve(&self, request_id: String) {
        *self.inner.crash_after_reserve.lock() = Some(request_id);
    }

    pub fn check_crash_after_reserve(&self, request_id: &str) {
        if self.inner.crash_after_reserve.lock().as_deref() == Some(request_id) {
            tracing::error!(
                request_id,
                "fault injection: crashing between the catalog reservation and the Raft write"
            );
            std::process::abort();
        }
    }

    /// `local-read`: whether `GET /orders/{number}` answers from this replica's own state
    /// machine alone, whatever its role and however far behind it is.
    pub fn reads_locally(&self) -> bool {
        self.inner.local_read
    }

    /// `ack-before-commit`: the number to answer at once for an order whose write the caller
    /// then finishes in the background; `None` when not armed (the caller writes and waits
    /// as usual).
    pub fn early_ack_number(&self) -> Option<u64> {
        self.inner.early_ack.as_ref().map(EarlyAck::guess)
    }
}
