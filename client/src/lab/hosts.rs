//! The engine's hand on the hosts: runs `cluster/hosts.sh` (the network namespaces, the
//! services in them, kill -9, SIGSTOP, nft) with the run's environment, appends what it says
//! to the run's `nemesis.log`, and reads the two answers the engine decides on: who leads
//! (`hosts.sh leader`) and at which term the store settled (`hosts.sh wait`).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::Context;

use super::script::run_logged;

use super::nemesis::{HostsCommand, Observed, Replica};

/// `cluster/hosts.layout`, compiled in: the file `cluster/hosts.sh` sources.
const LAYOUT_FILE: &str = include_str!("../../../cluster/hosts.layout");

/// Where `cluster/hosts.sh` puts the services: the replicas' ids, host names and ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub replicas: Vec<Replica>,
    domain: String,
    catalog_port: u16,
    node_port: u16,
    frontend_port: u16,
}

impl Layout {
    /// The layout of `cluster/hosts.layout`.
    pub fn of_hosts() -> anyhow::Result<Self> {
        Self::parse(LAYOUT_FILE).map_err(|e| anyhow::anyhow!("cluster/hosts.layout: {e}"))
    }

    /// Reads `KEY=VALUE` lines (comments and blank lines skipped).
    pub fn parse(text: &str) -> Result<Self, String> {
        let values = key_values(text)?;
        let get = |key: &str| {
            values
                .get(key)
                .copied()
                .ok_or_else(|| format!("{key} is missing"))
        };
        let port = |key: &str| -> Result<u16, String> {
            get(key)?
                .parse()
                .map_err(|_| format!("{key} is not a port"))
        };
        let replicas = get("HS_REPLICA_IDS")?
            .split(',')
            .map(|id| {
                id.trim()
                    .parse()
                    .map(Replica)
                    .map_err(|_| format!("'{id}' is not a replica id"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if replicas.is_empty() {
            return Err("HS_REPLICA_IDS names no replica".to_owned());
        }
        Ok(Self {
            replicas,
            domain: get("HS_DOMAIN")?.to_owned(),
            catalog_port: port("HS_CATALOG_PORT")?,
            node_port: port("HS_NODE_PORT")?,
            frontend_port: port("HS_FRONTEND_PORT")?,
        })
    }

    pub fn catalog_url(&self) -> String {
        format!("http://catalog.{}:{}", self.domain, self.catalog_port)
    }

    pub fn frontend_url(&self) -> String {
        format!("http://frontend.{}:{}", self.domain, self.frontend_port)
    }

    /// The replicas' addresses as the client's and toystore-state's `--nodes` take them.
    pub fn nodes_arg(&self) -> String {
        self.replicas
            .iter()
            .map(|r| format!("{}=http://{r}.{}:{}", r.0, self.domain, self.node_port))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The `KEY=VALUE` lines of a file the scripts write or source (`#` comments and blank lines
/// skipped).
pub fn key_values(text: &str) -> Result<BTreeMap<&str, &str>, String> {
    let mut values = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("'{line}' is not KEY=VALUE"))?;
        values.insert(key.trim(), value.trim());
    }
    Ok(values)
}

/// `cluster/hosts.sh` with the environment its services get.
pub struct Hosts {
    pub layout: Layout,
    script: PathBuf,
    /// Variables set (`Some`) or removed (`None`) for every command, over the caller's own.
    env: BTreeMap<String, Option<String>>,
    log: PathBuf,
}

impl Hosts {
    pub fn new(layout: Layout, script: PathBuf, log: PathBuf) -> Self {
        Self {
            layout,
            script,
            env: BTreeMap::new(),
            log,
        }
    }

    /// Sets `key` for every later command (hosts.sh passes every `TOYSTORE_*` on to the
    /// services it starts).
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.env.insert(key.to_owned(), Some(value.into()));
    }

    /// Removes `key` from every later command's environment.
    pub fn unset(&mut self, key: &str) {
        self.env.insert(key.to_owned(), None);
    }

    fn command(&self, args: &[String]) -> Command {
        let mut command = Command::new(&self.script);
        command.args(args).stdin(Stdio::null());
        for (key, value) in &self.env {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        command
    }

    /// Runs `hosts.sh ARGS`, its output appended to the log; returns that output. On failure
    /// the error carries its last lines.
    pub fn run(&self, command: &HostsCommand) -> anyhow::Result<String> {
        run_logged(
            self.command(&command.0),
            &format!("cluster/hosts.sh {command}"),
            &self.log,
        )
    }

    /// `hosts.sh WORDS…`.
    pub fn run_words(&self, words: &[&str]) -> anyhow::Result<String> {
        self.run(&HostsCommand(
            words.iter().map(|w| (*w).to_owned()).collect(),
        ))
    }

    /// Who leads now, and at which term.
    pub fn observe(&self) -> anyhow::Result<Observed> {
        let text = self.run_words(&["leader"])?;
        let (leader, term) = parse_leader(&text)
            .with_context(|| format!("cluster/hosts.sh leader said {text:?}"))?;
        Ok(Observed::new(leader, term, &self.layout.replicas))
    }

    /// Waits up to `secs` for every service to answer and the replicas to agree on a leader;
    /// returns the term they settled at.
    pub fn wait_settled(&self, secs: u64) -> anyhow::Result<u64> {
        let text = self.run_words(&["wait", &secs.to_string()])?;
        parse_settled_term(&text).with_context(|| format!("cluster/hosts.sh wait said {text:?}"))
    }

    /// Starts `program ARGS` in the client namespace (`hosts.sh exec client`), its output
    /// written to `log`.
    pub fn spawn_in_client(
        &self,
        program: &Path,
        args: &[String],
        log: &Path,
    ) -> anyhow::Result<Child> {
        let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        // env --default-signal: a program started from a non-interactive shell in the
        // background ignores SIGINT, and SIGINT is how the engine ends the client's sessions.
        let mut words = vec![
            "exec".to_owned(),
            "client".to_owned(),
            "env".to_owned(),
            "--default-signal=INT".to_owned(),
            program.display().to_string(),
        ];
        words.extend(args.iter().cloned());
        self.command(&words)
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {} in the client namespace", program.display()))
    }
}

/// `hosts.sh leader`'s answer, "nodeN TERM".
pub fn parse_leader(text: &str) -> Option<(Replica, u64)> {
    let line = text.lines().rev().find(|line| line.starts_with("node"))?;
    let (node, term) = line.trim().split_once(' ')?;
    let id = node.strip_prefix("node")?.parse().ok()?;
    Some((Replica(id), term.trim().parse().ok()?))
}

/// The term in `hosts.sh wait`'s "settled: …, leader nodeN at term T".
pub fn parse_settled_term(text: &str) -> Option<u64> {
    let line = text
        .lines()
        .rev()
        .find(|line| line.starts_with("settled:"))?;
    line.rsplit_once(" at term ")?.1.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_line_names_a_replica_and_a_term() {
        assert_eq!(parse_leader("node3 12\n"), Some((Replica(3), 12)));
        assert_eq!(
            parse_leader("hosts.sh: warning: x\nnode1 4"),
            Some((Replica(1), 4))
        );
        assert_eq!(parse_leader("no leader\n"), None);
        assert_eq!(parse_leader("node 4\n"), None);
        assert_eq!(parse_leader("node2 four\n"), None);
    }

    #[test]
    fn the_settled_line_gives_the_term() {
        assert_eq!(
            parse_settled_term("settled: every service healthy, leader node2 at term 9\n"),
            Some(9)
        );
        assert_eq!(parse_settled_term("the cluster did not settle\n"), None);
    }

    #[test]
    fn the_compiled_in_layout_names_every_service_by_host_name() {
        let layout = Layout::of_hosts().expect("cluster/hosts.layout parses");
        assert_eq!(
            layout.nodes_arg(),
            "1=http://node1.toy:8201,2=http://node2.toy:8201,3=http://node3.toy:8201"
        );
        assert_eq!(layout.catalog_url(), "http://catalog.toy:8100");
        assert_eq!(layout.frontend_url(), "http://frontend.toy:8000");
    }

    #[test]
    fn a_layout_without_a_key_or_with_a_bad_port_is_refused() {
        let good = "HS_REPLICA_IDS=1,2\nHS_DOMAIN=x\nHS_CATALOG_PORT=1\nHS_NODE_PORT=2\nHS_FRONTEND_PORT=3\n";
        assert!(Layout::parse(good).is_ok());
        assert!(
            Layout::parse(&good.replace("HS_DOMAIN=x\n", ""))
                .is_err_and(|e| e.contains("HS_DOMAIN"))
        );
        assert!(Layout::parse(&good.replace("=3", "=70000")).is_err());
        assert!(Layout::parse(&good.replace("1,2", "1,b")).is_err());
        assert!(Layout::parse("just words").is_err());
    }
}
