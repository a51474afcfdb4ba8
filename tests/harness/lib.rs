//! Test harness for whole-system tests.
//!
//! - [`store`]: a complete store (catalog, three order replicas, front-end) running in this
//!   process, with RocksDB in a temporary directory, whose replicas can be stopped and
//!   restarted on their data and their port (see [`free_port`]).
//! - [`proxy`]: a TCP proxy that can cut a link, for partitions between replicas.
//! - [`processes`]: the same store as real processes started by `cluster/up.sh`, for kill -9.
//! - [`browser`]: headless Chromium over WebDriver, to use the store's pages as a person would.
//!
//! Everything listens on 127.0.0.1 only. Waiting is always "poll a condition until a
//! deadline", never a bare sleep.

pub mod browser;
pub mod processes;
pub mod proxy;
pub mod store;

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use api::client::ServiceClient;
use tokio::time::Instant;

/// A port no test in this process has been given and nothing listens on now.
pub fn free_port() -> u16 {
    free_port_block(1)
}

/// The first of `len` consecutive ports no test in this process has been given and none of
/// which is in use now.
///
/// The ports come from below Linux's ephemeral range (32768+), which the kernel uses for
/// outgoing connections and binds to port 0. So a port handed out here stays free until the
/// test binds it, and stays free while a replica is stopped and before it is restarted on the
/// same port: nothing else in the process (clients, servers on port 0, proxies) can take it.
pub fn free_port_block(len: u16) -> u16 {
    const FIRST: u32 = 10_000;
    const END: u32 = 32_000;
    static HANDED_OUT: AtomicU32 = AtomicU32::new(0);
    let len = u32::from(len);
    let span = END - FIRST - len;
    // Concurrent test processes start at different places in the range.
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..100 {
        let base = FIRST + (start + HANDED_OUT.fetch_add(len, Ordering::Relaxed)) % span;
        let all_free = (base..base + len).all(|port| {
            u16::try_from(port)
                .is_ok_and(|port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
        });
        if all_free {
            return u16::try_from(base).expect("below 32 000");
        }
    }
    panic!("no {len} free ports on 127.0.0.1 between {FIRST} and {END}");
}

/// How long a test waits for any one HTTP answer.
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);

/// An HTTP client for talking to the store from a test.
pub fn http() -> ServiceClient {
    ServiceClient::new(HTTP_TIMEOUT, None)
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

/// The Prometheus text a service serves on `/metrics` at `base`.
pub async fn metrics_text(base: &reqwest::Url) -> String {
    let http = ServiceClient::new(HTTP_TIMEOUT, None);
    api::metrics::Scrape::fetch(&http, base)
        .await
        .expect("/metrics answers")
        .text
}

/// The value of an unlabelled series in Prometheus text, if exported.
pub fn metric(text: &str, name: &str) -> Option<u64> {
    let scrape = api::metrics::Scrape {
        text: text.to_owned(),
    };
    scrape.value(name).map(|value| value as u64)
}

/// Logs from the services under test, shown when `RUST_LOG` is set.
pub fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        api::server::init_tracing();
    }
}

/// A front-end alone with `catalog` (its one replica address leads nowhere), started in this
/// process; returns once it holds a cache lease.
pub async fn start_lone_frontend(
    catalog: &reqwest::Url,
) -> (api::server::ServerHandle, api::frontend::FrontendClient) {
    start_lone_frontend_with(catalog, |_| {}).await
}

/// [`start_lone_frontend`] with its configuration adjusted by `tune` before it starts.
pub async fn start_lone_frontend_with(
    catalog: &reqwest::Url,
    tune: impl FnOnce(&mut frontend::Config),
) -> (api::server::ServerHandle, api::frontend::FrontendClient) {
    let nodes = api::cluster::NodeAddrs::new([(
        1,
        api::url::parse_base_url(&format!("http://127.0.0.1:{}", free_port())).expect("a URL"),
    )]);
    let mut config = frontend::Config::for_test(catalog.clone(), nodes);
    tune(&mut config);
    let server = frontend::serve(config).await.expect("front-end starts");
    let client = api::frontend::FrontendClient::new(
        api::url::parse_base_url(&server.url()).expect("a front-end URL"),
        http(),
    );
    wait_for("the cache lease", Duration::from_secs(10), || async {
        client
            .status()
            .await
            .ok()
            .filter(|status| status.cache.lease_valid)
    })
    .await;
    (server, client)
}
