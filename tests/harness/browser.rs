//! `Browser`: headless Chromium driven over WebDriver, for tests that use the store's pages as
//! a person would.
//!
//! Each browser is Debian's `chromium` under its own `chromedriver`, started on a free port
//! with a fresh profile directory, so tests running at the same time share nothing. The
//! browser tests are part of `cargo test`: when chromium or chromedriver is missing they fail
//! with the command that installs them (CI's `.ci/run` does), rather than skip and pass.
//!
//! Everything is "poll a condition until a deadline" ([`Browser::wait_until`]): the pages poll
//! the store, so what they show arrives within a second or so, never at a fixed moment.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::time::Instant;

use crate::{free_port, wait_for};

/// How long a page may take to show what a test waits for.
const PAGE_DEADLINE: Duration = Duration::from_secs(30);

/// Where screenshots go when `TOYSTORE_SCREENSHOTS` names a directory (relative paths are
/// relative to the repository root, e.g. `TOYSTORE_SCREENSHOTS=docs/img`).
pub const SCREENSHOTS_ENV: &str = "TOYSTORE_SCREENSHOTS";

const INSTALL_HINT: &str = "the browser tests need Debian's chromium and chromium-driver: \
     apt-get install -y chromium chromium-driver (.ci/run installs them); \
     TOYSTORE_CHROMIUM and TOYSTORE_CHROMEDRIVER name other binaries";

pub struct Browser {
    client: Client,
    driver: Child,
    _profile: TempDir,
}

/// `name` as a program on `PATH` (or a path as given), if it exists.
fn find_program(name: &str) -> Option<PathBuf> {
    let given = Path::new(name);
    if given.components().count() > 1 {
        return given.is_file().then(|| given.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

fn program(env: &str, default: &str) -> PathBuf {
    let name = std::env::var(env).unwrap_or_else(|_| default.to_string());
    find_program(&name).unwrap_or_else(|| panic!("cannot find {name:?}: {INSTALL_HINT}"))
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start() -> Self {
        let chromium = program("TOYSTORE_CHROMIUM", "chromium");
        let chromedriver = program("TOYSTORE_CHROMEDRIVER", "chromedriver");
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, which Chromium joins: stopping the group stops both, even
            // when a failed test never ended its session.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", chromedriver.display()));
        let profile = TempDir::new().expect("a temporary browser profile");
        let mut guard = DriverGuard(Some(driver));
        wait_for(
            "chromedriver to listen",
            Duration::from_secs(20),
            || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(drop)
            },
        )
        .await;
        // --headless=new etc.: the flags the brief of the browser tests fixes; the
        // background-networking ones keep Chromium from calling home on a closed network.
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--window-size=1280,1250".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal");
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|err| {
                panic!("chromedriver cannot start chromium: {err}; {INSTALL_HINT}")
            });
        Self {
            client,
            driver: guard.0.take().expect("the driver is still owned here"),
            _profile: profile,
        }
    }

    /// Loads `url` and waits until its document has loaded.
    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("the page loads");
    }

    /// The value of a JavaScript expression in the page.
    pub async fn eval(&self, expression: &str) -> Value {
        self.client
            .execute(&format!("return ({expression});"), Vec::new())
            .await
            .unwrap_or_else(|err| panic!("evaluating {expression}: {err}"))
    }

    /// Runs JavaScript statements in the page.
    pub async fn run(&self, statements: &str) {
        self.client
            .execute(statements, Vec::new())
            .await
            .unwrap_or_else(|err| panic!("running {statements}: {err}"));
    }

    /// Polls `expression` until it is truthy (not null, false, 0 or ""); returns its value.
    /// Panics after [`PAGE_DEADLINE`] naming `what`, with the page's text.
    pub async fn wait_until(&self, what: &str, expression: &str) -> Value {
        let deadline = Instant::now() + PAGE_DEADLINE;
        loop {
            let value = self.eval(expression).await;
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() >= deadline {
                let text = self.eval("document.body.innerText").await;
                panic!(
                    "timed out after {PAGE_DEADLINE:?} waiting for {what} ({expression} is {value}); the page shows:\n{}",
                    text.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The text of the first element matching `css` ("" when there is none).
    pub async fn text(&self, css: &str) -> String {
        let css = json!(css);
        self.eval(&format!(
            "(document.querySelector({css}) || {{ textContent: '' }}).textContent"
        ))
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Saves a PNG of the window as `<dir>/<name>.png` when [`SCREENSHOTS_ENV`] is set.
    pub async fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os(SCREENSHOTS_ENV) else {
            return;
        };
        let dir = crate::processes::repo_root().join(dir);
        std::fs::create_dir_all(&dir).expect("the screenshot directory can be made");
        let png = self.client.screenshot().await.expect("a screenshot");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("the screenshot is written");
        eprintln!("screenshot: {}", path.display());
    }

    /// Whether this run takes screenshots (tests then let the pages fill up first).
    pub fn screenshots_wanted() -> bool {
        std::env::var_os(SCREENSHOTS_ENV).is_some()
    }

    /// Ends the session and the browser, then chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        stop(&mut self.driver);
    }
}

impl Drop for Browser {
    /// A test that panicked still stops its chromedriver (which takes its Chromium along).
    fn drop(&mut self) {
        stop(&mut self.driver);
    }
}

/// Stops chromedriver if [`Browser::start`] panics before the browser exists.
struct DriverGuard(Option<Child>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            stop(child);
        }
    }
}

/// Kills chromedriver's process group (chromedriver and the Chromium it started), then reaps
/// chromedriver.
fn stop(child: &mut Child) {
    // `kill -KILL -- -PGID`: the group is chromedriver's own (process_group(0) above).
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}
