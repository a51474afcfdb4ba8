//! Test harness for whole-system tests.
//!
//! - [`store`]: a complete store (catalog, three order replicas, front-end) running in this
//!   process on ephemeral ports, with RocksDB in a temporary directory, whose replicas can be
//!   stopped and restarted on their data.
//! - [`proxy`]: a TCP proxy that can cut a link, for partitions between replicas.
//! - [`processes`]: the same store as real processes started by `cluster/up.sh`, for kill -9.
//!
//! Everything listens on 127.0.0.1 only. Waiting is always "poll a condition until a
//! deadline", never a bare sleep.

pub mod processes;
pub mod proxy;
pub mod store;

use std::future::Future;
use std::time::Duration;

use api::client::ServiceClient;
use tokio::time::Instant;

/// A port that was free a moment ago (the OS may hand it out again, but not soon).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("the OS has a free port on 127.0.0.1")
}

/// An HTTP client for talking to the store from a test.
pub fn http() -> ServiceClient {
    ServiceClient::new(Duration::from_secs(15), None)
}

/// Polls `probe` every 20 ms until it yields a value; panics naming `what` after `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Logs from the services under test, shown when `RUST_LOG` is set.
pub fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        api::server::init_tracing();
    }
}
