//! `ProcessStore`: the store as real processes, started and broken by the `cluster/` scripts.
//!
//! Each store gets its own `TOYSTORE_HOME` (a temporary directory) and its own port range
//! (`TOYSTORE_PORT_BASE`), and runs the debug binaries of this very build
//! (`TOYSTORE_BIN_DIR`), which are built on first use.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use api::catalog::CatalogClient;
use api::client::ServiceClient;
use api::frontend::FrontendClient;
use api::order::ReplicaClient;
use api::status::NodeStatus;
use api::url::parse_base_url;
use tempfile::TempDir;

use crate::{free_port_block, wait_for};

/// The workspace root (this crate lives in `tests/`): from the `CARGO_MANIFEST_DIR` cargo sets
/// when it runs the tests, so that a test binary reused from another checkout of the workspace
/// (cargo's fingerprints do not hold absolute paths) still tests this one.
pub fn repo_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Builds the service and client binaries once per test run (cargo makes this a no-op when
/// they are fresh) and returns the directory they are in: the profile directory of this test
/// binary, so the same `CARGO_TARGET_DIR` and profile are used.
pub fn binaries() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // `-p system-tests` makes cargo resolve features as it did for this test binary, so
        // the libraries built for the tests are reused and only the binaries are linked.
        let status = Command::new(cargo)
            .current_dir(repo_root())
            .args([
                "build",
                "--bins",
                "-p",
                "catalog",
                "-p",
                "frontend",
                "-p",
                "order-raft",
                "-p",
                "client",
                "-p",
                "checker",
                "-p",
                "system-tests",
            ])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the service binaries failed");
        // target/<profile>/deps/system-<hash> → target/<profile>
        let exe = std::env::current_exe().expect("the test binary has a path");
        exe.parent()
            .and_then(Path::parent)
            .expect("the test binary is in <target>/<profile>/deps")
            .to_path_buf()
    })
}

pub struct ProcessStore {
    home: TempDir,
    port_base: u16,
    env: Vec<(String, String)>,
    pub http: ServiceClient,
}

impl ProcessStore {
    /// Runs `cluster/up.sh` with extra environment variables for the services.
    pub fn up(extra_env: &[(&str, &str)]) -> Self {
        let bin_dir = binaries();
        let home = TempDir::new().expect("a temporary TOYSTORE_HOME");
        // The store uses base, base + 100 and base + 201..=203.
        let port_base = free_port_block(204);
        let mut env: Vec<(String, String)> = vec![
            ("TOYSTORE_HOME".into(), home.path().display().to_string()),
            ("TOYSTORE_PORT_BASE".into(), port_base.to_string()),
            ("TOYSTORE_BIN_DIR".into(), bin_dir.display().to_string()),
        ];
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let mut store = Self {
            home,
            port_base,
            env,
            http: ServiceClient::new(Duration::from_secs(15), None),
        };
        store.script_ok("up.sh", &[]);
        let token = std::fs::read_to_string(store.home.path().join("cluster.token"))
            .expect("up.sh wrote a token");
        store.http = ServiceClient::new(Duration::from_secs(15), Some(token.trim().into()));
        store
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Runs `cluster/<name>` with this store's environment.
    pub fn script(&self, name: &str, args: &[&str]) -> Output {
        Command::new(repo_root().join("cluster").join(name))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("the script runs")
    }

    /// Runs `cluster/<name>` with this store's environment and `extra` on top.
    pub fn script_with_env(&self, name: &str, args: &[&str], extra: &[(&str, &str)]) -> Output {
        Command::new(repo_root().join("cluster").join(name))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().copied())
            .output()
            .expect("the script runs")
    }

    /// Runs a script and panics with its output unless it succeeds; returns its stdout.
    pub fn script_ok(&self, name: &str, args: &[&str]) -> String {
        let output = self.script(name, args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "cluster/{name} {args:?} failed ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    pub fn frontend_url(&self) -> reqwest::Url {
        url(self.port_base.into())
    }

    pub fn catalog_url(&self) -> reqwest::Url {
        url(u64::from(self.port_base) + 100)
    }

    pub fn node_url(&self, id: u64) -> reqwest::Url {
        url(u64::from(self.port_base) + 200 + id)
    }

    /// The catalog, called with the cluster token.
    pub fn catalog(&self) -> CatalogClient {
        CatalogClient::new(self.catalog_url(), self.http.clone())
    }

    /// Replica `id`, called with the cluster token.
    pub fn replica(&self, id: u64) -> ReplicaClient {
        ReplicaClient::new(self.node_url(id), self.http.clone())
    }

    pub async fn status(&self, id: u64) -> Option<NodeStatus> {
        self.replica(id).status().await.ok()
    }

    /// Waits until a replica reports itself the Raft leader; returns its id.
    pub async fn leader(&self) -> u64 {
        wait_for("a Raft leader", Duration::from_secs(30), || async {
            for id in 1..=3 {
                if let Some(status) = self.status(id).await
                    && status.role == "leader"
                {
                    return Some(id);
                }
            }
            None
        })
        .await
    }

    /// Waits until all three replicas report the same applied index and digest.
    pub async fn converged(&self) -> NodeStatus {
        wait_for(
            "all three replicas to converge",
            Duration::from_secs(60),
            || async {
                let mut all = Vec::new();
                for id in 1..=3 {
                    all.push(self.status(id).await?);
                }
                let first = &all[0];
                all.iter()
                    .all(|s| s.applied_index == first.applied_index && s.digest == first.digest)
                    .then(|| first.clone())
            },
        )
        .await
    }

    /// The front-end's public API.
    pub fn frontend(&self) -> FrontendClient {
        FrontendClient::new(self.frontend_url(), self.http.clone())
    }

    /// A `client` run against this store's front-end.
    pub fn client(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binaries().join("client"));
        command
            .arg("--frontend")
            .arg(self.frontend_url().as_str())
            .args(args);
        command
    }
}

fn url(port: u64) -> reqwest::Url {
    parse_base_url(&format!("http://127.0.0.1:{port}")).expect("a loopback URL")
}

impl Drop for ProcessStore {
    fn drop(&mut self) {
        let output = self.script("down.sh", &[]);
        if !output.status.success() {
            eprintln!(
                "cluster/down.sh failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}
