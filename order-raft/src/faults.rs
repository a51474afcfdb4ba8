//! Fault points for tests and chaos runs, armed through `POST /faults` on a replica started
//! with `--fault-injection`. Never reachable otherwise.

use parking_lot::Mutex;

/// The armed fault points.
#[derive(Default)]
pub struct Faults {
    crash_after_buy: Mutex<Option<String>>,
}

impl Faults {
    /// Arms a crash (abort, as kill -9 would) after the catalog buy of `request_id`.
    pub fn arm_crash_after_buy(&self, request_id: String) {
        *self.crash_after_buy.lock() = Some(request_id);
    }

    pub fn check_crash_after_buy(&self, request_id: &str) {
        if self.crash_after_buy.lock().as_deref() == Some(request_id) {
            tracing::error!(
                request_id,
                "fault injection: crashing between the catalog buy and the Raft write"
            );
            std::process::abort();
        }
    }
}
