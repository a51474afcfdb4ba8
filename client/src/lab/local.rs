//! A local cluster for the lab's experiments: `cluster/up.sh` in a home and on ports of its
//! own, driven through the operator's scripts (`up.sh`, `down.sh`, `kill.sh`, `restart.sh`)
//! with their output logged; the load client (the `client` crate) run in this process on a
//! thread of its own; the services' `/status` read with [`super::status`].

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::JoinHandle;

use anyhow::Context;
use api::cluster::NodeAddrs;
use reqwest::Url;

use anyhow::bail;

use super::hosts::key_values;
use super::script::run_logged;
use super::status::{self, Snapshot};
use super::tree::{Tree, absolute, copy_binaries};
use crate::{Config, Report};

/// The binaries a local cluster's scripts start, copied into its home.
const BINARIES: [&str; 5] = [
    "catalog",
    "order-raft",
    "frontend",
    "client",
    "toystore-lab",
];

/// Where a local run's files go.
pub struct RunDirs {
    /// The results (`failover.csv`, `latency.csv`).
    pub data: PathBuf,
    /// The raw outputs, in `data/raw`.
    pub raw: PathBuf,
    /// Where the binaries were copied from.
    pub bins_from: PathBuf,
}

/// Prepares the run `name` (`chaos`, `experiment`): its cluster's home (`home`, default
/// `<repo>/run/NAME`; never the default cluster's `<repo>/run`, whose data a run wipes), its
/// results (`data`, default `<repo>/plots/data`) with the raw files starting with `raw_prefix`
/// removed, and a cluster on `port_base` whose scripts log to `raw/LOG`. Whatever an earlier
/// run left in the home is stopped, then the binaries are copied into it, so that a cargo
/// build during the run cannot swap one between a kill and its restart.
pub fn prepare(
    tree: &Tree,
    name: &str,
    home: Option<&Path>,
    data: Option<&Path>,
    raw_prefix: &str,
    port_base: u16,
    log: &str,
) -> anyhow::Result<(LocalCluster, RunDirs)> {
    let repo = tree.repo();
    let home = absolute(home.map_or_else(|| repo.join("run").join(name), Path::to_path_buf));
    // Before anything is removed.
    refuse_default_home(tree, &home)?;
    let data = absolute(data.map_or_else(|| repo.join("plots/data"), Path::to_path_buf));
    let raw = data.join("raw");
    fs::create_dir_all(&raw).with_context(|| format!("cannot create {}", raw.display()))?;
    for entry in fs::read_dir(&raw)? {
        let path = entry?.path();
        let stale = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(raw_prefix));
        if stale {
            fs::remove_file(&path)?;
        }
    }
    let (cluster, bins_from) = LocalCluster::new(tree, home, port_base, raw.join(log))?;
    Ok((
        cluster,
        RunDirs {
            data,
            raw,
            bins_from,
        },
    ))
}

/// The cluster `cluster/up.sh` runs in `home`, through its scripts.
#[derive(Clone)]
pub struct LocalCluster {
    pub tree: Tree,
    /// Set for every script (and so for the services they start).
    pub env: Vec<(String, String)>,
    pub home: PathBuf,
    /// Where the scripts' output goes.
    pub log: PathBuf,
}

impl LocalCluster {
    /// The cluster in `home` (never the default cluster's `<repo>/run`, whose data a run
    /// wipes) on `port_base`, its scripts logging to `log`. Whatever an earlier run left in the
    /// home is stopped, then the binaries are copied into it, so that a cargo build during the
    /// run cannot swap one between a kill and its restart. Returns where they came from too.
    pub fn new(
        tree: &Tree,
        home: PathBuf,
        port_base: u16,
        log: PathBuf,
    ) -> anyhow::Result<(Self, PathBuf)> {
        refuse_default_home(tree, &home)?;
        let bin = home.join("bin");
        let bins_from = tree.bin_dir()?;
        let cluster = Self {
            tree: tree.clone(),
            env: vec![
                ("TOYSTORE_HOME".into(), home.display().to_string()),
                ("TOYSTORE_PORT_BASE".into(), port_base.to_string()),
                ("TOYSTORE_BIN_DIR".into(), bin.display().to_string()),
            ],
            home,
            log,
        };
        if let Some(dir) = cluster.log.parent() {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        fs::write(&cluster.log, "")?;
        let _ = cluster.script("down.sh", &[]);
        copy_binaries(&bins_from, &bin, &BINARIES)?;
        Ok((cluster, bins_from))
    }

    /// Runs `cluster/NAME ARGS…`.
    pub fn script(&self, name: &str, args: &[&str]) -> anyhow::Result<String> {
        self.script_with(name, args, &[])
    }

    /// Runs `cluster/NAME ARGS…` with `extra` variables set (`Some`) or removed (`None`).
    pub fn script_with(
        &self,
        name: &str,
        args: &[&str],
        extra: &[(&str, Option<&str>)],
    ) -> anyhow::Result<String> {
        let mut command = Command::new(self.tree.script(name));
        command
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        for (key, value) in extra {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        run_logged(
            command,
            &format!("cluster/{name} {}", args.join(" ")),
            &self.log,
        )
    }

    /// The services' addresses, from the `ports.env` up.sh wrote.
    pub fn addresses(&self) -> anyhow::Result<Addresses> {
        let path = self.home.join("ports.env");
        let text =
            fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let values = key_values(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let get = |key: &str| {
            values
                .get(key)
                .copied()
                .with_context(|| format!("{} has no {key}", path.display()))
        };
        let local = |key: &str| -> anyhow::Result<Url> {
            Ok(format!("http://127.0.0.1:{}", get(key)?).parse()?)
        };
        Ok(Addresses {
            frontend: local("TOYSTORE_FRONTEND_PORT")?,
            catalog: local("TOYSTORE_CATALOG_PORT")?,
            nodes: get("TOYSTORE_NODES")?
                .parse()
                .map_err(|e| anyhow::anyhow!("TOYSTORE_NODES in {}: {e}", path.display()))?,
        })
    }

    /// The cluster token up.sh made (`cluster.token`), for the services' internal routes.
    pub fn token(&self) -> anyhow::Result<String> {
        let path = self.home.join("cluster.token");
        let token =
            fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(token.trim().to_owned())
    }
}

/// A lab run wipes its cluster's data: never in the default cluster's home, `<repo>/run`.
fn refuse_default_home(tree: &Tree, home: &Path) -> anyhow::Result<()> {
    if home == tree.repo().join("run") {
        bail!(
            "TOYSTORE_HOME={} is the default cluster's home, whose data this run would wipe; choose another",
            home.display()
        );
    }
    Ok(())
}

/// Where a local cluster's services listen.
#[derive(Clone, Debug)]
pub struct Addresses {
    pub frontend: Url,
    pub catalog: Url,
    pub nodes: NodeAddrs,
}

/// The repository's commit, for the record (`unknown` without git).
pub fn commit(repo: &Path) -> String {
    Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map_or_else(
            || "unknown".to_owned(),
            |out| String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        )
}

/// The client's configuration: `args` after the program name.
pub fn client_config(args: &[String]) -> anyhow::Result<Config> {
    let all = std::iter::once("client".to_owned()).chain(args.iter().cloned());
    <Config as clap::Parser>::try_parse_from(all).context("the client's configuration")
}

/// Runs the load client (the `client` crate) on a thread of its own; its text report goes to
/// `out`.
pub fn run_client(config: Config, out: &Path) -> JoinHandle<anyhow::Result<Report>> {
    let out = out.to_path_buf();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new()?;
        let report = runtime.block_on(crate::run(&config))?;
        fs::write(&out, format!("{report}\n"))?;
        Ok(report)
    })
}

/// The services' answers now.
pub fn observe(nodes: &NodeAddrs) -> anyhow::Result<Snapshot> {
    super::block_on(status::observe(nodes, None, None))
}

/// The services' answers now, the front-end's included.
pub fn observe_frontend(frontend: &Url) -> anyhow::Result<Snapshot> {
    super::block_on(status::observe(&NodeAddrs::new([]), Some(frontend), None))
}
