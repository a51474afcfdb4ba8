//! Fault points for tests and chaos runs, armed through `POST /faults` on a replica started
//! with `--fault-injection`. Never reachable otherwise.

use parking_lot::Mutex;

/// The armed fault points.
#[derive(Default)]
pub struct Faults {
    crash_after_reserve: Mutex<Option<String>>,
}

impl Faults {
    /// Arms a crash (abort, as kill -9 would) after the catalog reservation of `request_id`.
    pub fn arm_crash_after_reserve(&self, request_id: String) {
        *self.crash_after_reserve.lock() = Some(request_id);
    }

    pub fn check_crash_after_reserve(&self, request_id: &str) {
        if self.crash_after_reserve.lock().as_deref() == Some(request_id) {
            tracing::error!(
                request_id,
                "fault injection: crashing between the catalog reservation and the Raft write"
            );
            std::process::abort();
        }
    }
}
