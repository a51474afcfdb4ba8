//! The store's pages in a real browser (headless Chromium over WebDriver): the storefront sells,
//! shows stock as it changes, explains refusals and buys once however often a purchase is
//! sent; the dashboard shows the replicas and the leader, and names the new leader after the
//! old one is killed.
//!
//! `TOYSTORE_SCREENSHOTS=docs/img cargo test -p system-tests -- browser` also saves the
//! README's screenshots (the tests then let orders run long enough to fill the chart).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use api::frontend::FrontendClient;
use serde_json::json;
use system_tests::browser::Browser;
use system_tests::store::{StoreOptions, TestStore};
use system_tests::wait_for;
use tokio::task::JoinHandle;

/// A JavaScript expression: the stock the storefront shows for `toy` (null before its row).
fn shown_stock(toy: &str) -> String {
    let toy = json!(toy);
    format!(
        "(() => {{ const row = [...document.querySelectorAll('#toys tbody tr')].find((r) => r.dataset.toy === {toy}); \
         return row ? Number(row.querySelector('.stock').textContent) : null; }})()"
    )
}

/// A JavaScript statement block: sets `toy`'s quantity to `quantity` and clicks Buy `clicks`
/// times in a row (a double click when 2: the page must buy once).
fn buy(toy: &str, quantity: u32, clicks: usize) -> String {
    let toy = json!(toy);
    format!(
        "const row = [...document.querySelectorAll('#toys tbody tr')].find((r) => r.dataset.toy === {toy}); \
         row.querySelector('input.qty').value = '{quantity}'; \
         const message = document.getElementById('message'); \
         delete message.dataset.order; delete message.dataset.reason; \
         for (let i = 0; i < {clicks}; i++) row.querySelector('button.buy').click();"
    )
}

/// The order number the storefront's message shows, once it shows one.
const PLACED: &str = "document.getElementById('message').dataset.order";

async fn stock(store: &TestStore, toy: &str) -> u32 {
    store.product(toy).await.quantity
}

/// The Raft leader once the cluster has settled: the replicas agree on it and it is the
/// replica the front-end selected (leadership moves to the selection after a start).
async fn settled_leader(store: &TestStore) -> u64 {
    wait_for(
        "the leader to be the front-end's selection",
        Duration::from_secs(30),
        || async {
            let leader = store.leader().await;
            (store.frontend_status().await.selected_replica == Some(leader)).then_some(leader)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storefront_sells_once_follows_stock_and_explains_refusals() {
    let store = TestStore::start(StoreOptions {
        frontend: true,
        initial_stock: 20,
        ..StoreOptions::default()
    })
    .await;
    let api = store.frontend();
    let toys = api.products().await.expect("the catalog");
    let browser = Browser::start().await;
    browser.open(store.frontend_url().as_str()).await;
    browser
        .wait_until(
            "every toy to be listed",
            &format!(
                "document.querySelectorAll('#toys tbody tr').length === {}",
                toys.len()
            ),
        )
        .await;
    let tux = "Tux";
    browser
        .wait_until("Tux's stock", &format!("{} === 20", shown_stock(tux)))
        .await;

    // A purchase: the order number, and the stock drops.
    browser.run(&buy(tux, 3, 1)).await;
    let number = browser.wait_until("an order number", PLACED).await;
    let number: u64 = number
        .as_str()
        .and_then(|n| n.parse().ok())
        .expect("a number");
    assert!(
        browser
            .text("#message")
            .await
            .contains(&format!("Order #{number}"))
    );
    let record = api.lookup(number).await.expect("the order exists");
    assert_eq!((record.name.as_str(), record.quantity), (tux, 3));
    browser
        .wait_until("the stock to drop", &format!("{} === 17", shown_stock(tux)))
        .await;

    // A double click buys once.
    browser.run(&buy(tux, 2, 2)).await;
    browser.wait_until("the second order", PLACED).await;
    browser
        .wait_until(
            "the stock after one more purchase",
            &format!("{} === 15", shown_stock(tux)),
        )
        .await;
    assert_eq!(stock(&store, tux).await, 15, "a double click bought twice");

    // An answer lost on the way back: the page sends the purchase again with the same key,
    // and the store answers with the same order instead of selling again.
    browser
        .run(
            "const real = window.fetch; window.answerLost = false; \
             window.fetch = async (url, init) => { const answer = await real(url, init); \
               if (!window.answerLost && init && init.method === 'POST') { \
                 window.answerLost = true; throw new TypeError('answer lost'); } \
               return answer; };",
        )
        .await;
    browser.run(&buy(tux, 1, 1)).await;
    let retried = browser.wait_until("the retried order", PLACED).await;
    assert_eq!(
        browser.eval("window.answerLost").await,
        json!(true),
        "the answer was dropped"
    );
    let retried: u64 = retried
        .as_str()
        .and_then(|n| n.parse().ok())
        .expect("a number");
    assert_eq!(stock(&store, tux).await, 14, "the retry bought again");
    let after = api.lookup(retried + 1).await;
    assert!(
        after.is_err_and(|err| err.is_not_found()),
        "one order per purchase"
    );

    // A purchase made elsewhere (another tab, another shopper) shows without a reload.
    api.order(tux, 4, Some("elsewhere-1"))
        .await
        .expect("an order from elsewhere");
    browser
        .wait_until(
            "the stock bought elsewhere",
            &format!("{} === 10", shown_stock(tux)),
        )
        .await;
    browser.screenshot("storefront").await;

    // Look-ups: a placed order, and one that does not exist.
    let look_up = |n: String| {
        format!(
            "document.getElementById('lookup-result').textContent = ''; \
             document.getElementById('order-number').value = '{n}'; \
             document.querySelector('#lookup button').click();"
        )
    };
    browser.run(&look_up(number.to_string())).await;
    let found = browser
        .wait_until(
            "the order",
            "document.getElementById('lookup-result').textContent",
        )
        .await;
    assert_eq!(found, json!(format!("Order #{number}: 3 × Tux.")));
    browser.run(&look_up("999".into())).await;
    let missing = browser
        .wait_until(
            "no such order",
            "document.getElementById('lookup-result').textContent",
        )
        .await;
    assert_eq!(missing, json!("There is no order number 999."));

    // More than is left: the refusal says how many are.
    browser.run(&buy(tux, 1000, 1)).await;
    browser
        .wait_until(
            "an out-of-stock answer",
            "document.getElementById('message').dataset.reason === 'out_of_stock'",
        )
        .await;
    let refusal = browser.text("#message").await;
    assert!(refusal.contains("only 10 left"), "{refusal}");
    assert_eq!(stock(&store, tux).await, 10, "a refused order took stock");

    browser.close().await;
    store.shutdown().await;
}

/// Looks up and orders a toy through the front-end until stopped (at most `LIMIT` orders),
/// counting the orders placed.
struct Shopper {
    stop: Arc<AtomicBool>,
    placed: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Shopper {
    const LIMIT: u64 = 200_000;

    fn start(api: FrontendClient) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let placed = Arc::new(AtomicU64::new(0));
        let (halt, count) = (stop.clone(), placed.clone());
        let task = tokio::spawn(async move {
            for i in 0..Self::LIMIT {
                if halt.load(Ordering::Relaxed) {
                    break;
                }
                // Look around, then buy: the looks are cache hits (or misses) on the dashboard.
                let _ = api.product(["Tux", "Barbie", "Lego"][i as usize % 3]).await;
                let key = format!("shopper-{i}");
                if api.order("Lego", 1, Some(&key)).await.is_ok() {
                    count.fetch_add(1, Ordering::Relaxed);
                }
                // A steady trickle, not a benchmark: the machine runs other tests.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Self { stop, placed, task }
    }

    fn placed(&self) -> u64 {
        self.placed.load(Ordering::Relaxed)
    }

    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.placed.load(Ordering::Relaxed)
    }
}

/// The number of seconds in the dashboard's chart with placed orders.
const SECONDS_WITH_ORDERS: &str =
    "(window.dashboardData ? window.dashboardData.orders.filter((s) => s.placed > 0).length : 0)";

/// A store with a front-end, its settled leader, and a browser on its dashboard once the
/// dashboard names that leader.
async fn dashboard_naming_the_leader() -> (TestStore, u64, Browser) {
    let store = TestStore::start(StoreOptions {
        frontend: true,
        ..StoreOptions::default()
    })
    .await;
    let leader = settled_leader(&store).await;
    let browser = Browser::start().await;
    browser
        .open(&format!("{}dashboard", store.frontend_url()))
        .await;
    browser
        .wait_until(
            "the leader",
            &format!("document.getElementById('leader').dataset.leader === '{leader}'"),
        )
        .await;
    (store, leader, browser)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_replicas_the_leader_and_the_orders() {
    let (store, _, browser) = dashboard_naming_the_leader().await;
    browser
        .wait_until(
            "three replicas",
            "document.querySelectorAll('#replicas tbody tr').length === 3",
        )
        .await;
    let roles = browser
        .eval("[...document.querySelectorAll('#replicas tbody tr')].map((r) => r.dataset.role).sort()")
        .await;
    assert_eq!(roles, json!(["follower", "follower", "leader"]));
    let healthy = browser
        .wait_until(
            "the catalog's health",
            "document.getElementById('catalog').textContent",
        )
        .await;
    assert_eq!(healthy, json!("healthy"));

    // Orders show on the chart (for a screenshot, a few seconds' worth).
    let shopper = Shopper::start(store.frontend());
    let seconds = if Browser::screenshots_wanted() { 20 } else { 1 };
    browser
        .wait_until(
            "orders on the chart",
            &format!("{SECONDS_WITH_ORDERS} >= {seconds}"),
        )
        .await;
    let placed = shopper.finish().await;
    let data = store
        .frontend()
        .dashboard()
        .await
        .expect("the dashboard's data");
    let counted: u64 = data.orders.iter().map(|s| s.placed).sum();
    assert!(
        counted >= 1 && counted <= placed,
        "{counted} of {placed} placed"
    );
    assert!(data.orders.iter().any(|s| s.p99_ms.is_some()));
    assert_eq!(data.catalog.toys, Some(18));
    // Each replica's purged log index, as its /status says (none yet: no snapshot so early).
    let purged = browser
        .eval(
            "[...document.querySelectorAll('#replicas tbody tr')].map((r) => [Number(r.dataset.replica), r.cells[7].textContent])",
        )
        .await;
    let mut expected = Vec::new();
    for replica in &data.replicas {
        let status = replica.status.as_ref().expect("every replica answers");
        let shown = status
            .purged_index
            .map_or("–".to_owned(), |i| i.to_string());
        expected.push(json!([replica.id, shown]));
    }
    let mut purged = purged.as_array().cloned().unwrap_or_default();
    purged.sort_by_key(|row| row[0].as_u64());
    expected.sort_by_key(|row| row[0].as_u64());
    assert_eq!(purged, expected, "the Purged to column");
    browser.screenshot("dashboard").await;

    browser.close().await;
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_names_the_new_leader_after_the_leader_is_killed() {
    let (mut store, leader, browser) = dashboard_naming_the_leader().await;
    let shopper = Shopper::start(store.frontend());
    if Browser::screenshots_wanted() {
        browser
            .wait_until(
                "orders before the kill",
                &format!("{SECONDS_WITH_ORDERS} >= 15"),
            )
            .await;
    }

    store.stop_node(leader).await;
    let survivors: Vec<u64> = store.running();
    let new_leader = store.leader_among(&survivors).await;
    assert_ne!(new_leader, leader);
    browser
        .wait_until(
            "the new leader",
            &format!("document.getElementById('leader').dataset.leader === '{new_leader}'"),
        )
        .await;
    browser
        .wait_until(
            "the killed replica shown down",
            &format!("document.querySelector('#replicas tr[data-replica=\"{leader}\"]').dataset.role === 'down'"),
        )
        .await;
    browser
        .wait_until(
            "the leader change in the event list",
            &format!("document.querySelector('#events li[data-kind=\"leader\"][data-replica=\"{new_leader}\"]')"),
        )
        .await;
    browser
        .wait_until(
            "the reselection in the event list",
            "document.querySelector('#events li[data-kind=\"reselection\"]')",
        )
        .await;
    // Orders go on with the new leader.
    let before = shopper.placed();
    wait_for(
        "orders after the failover",
        Duration::from_secs(30),
        || async { (shopper.placed() >= before + 10).then_some(()) },
    )
    .await;
    if Browser::screenshots_wanted() {
        // Let the chart show the gap with orders flowing on both sides of it.
        browser
            .wait_until(
                "orders after the kill",
                &format!("{SECONDS_WITH_ORDERS} >= 30"),
            )
            .await;
    }
    browser.screenshot("dashboard-leader-kill").await;
    shopper.finish().await;

    browser.close().await;
    store.shutdown().await;
}
