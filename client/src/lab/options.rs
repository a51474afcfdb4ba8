//! The command line of `toystore-lab verify` (what `cluster/verify.sh` passes on), checked by
//! clap and [`VerifyOptions::nemeses`], and what follows from it: the services' environment,
//! where files go, which faults run and how to repeat the run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, ensure};
use clap::{Args, ValueEnum};

use super::hosts::{Hosts, Layout};
use super::nemesis::{self, Nemesis};
use super::tree::{Tree, absolute};

/// "on" or "off", as the runs print a cache setting.
pub fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// Key-reuse sessions in short-retention mode (of the client's 5).
pub const REUSE_SESSIONS: usize = 2;

/// The front-end's cache of committed orders during the rounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OrderCache {
    /// On in every round.
    On,
    /// Off (capacity 0): every order read reaches a replica.
    Off,
    /// On in the first half of the rounds, off in the rest (the front-end restarted with
    /// SIGTERM in between).
    Mixed,
}

impl OrderCache {
    pub fn name(self) -> &'static str {
        match self {
            Self::On => "on",
            Self::Off => "off",
            Self::Mixed => "mixed",
        }
    }

    /// Whether the cache is on in round `round` (from 1) of `rounds`. Mixed switches once,
    /// half way: the first pass over the faults with the cache, the second without.
    pub fn on_in(self, round: usize, rounds: usize) -> bool {
        match self {
            Self::On => true,
            Self::Off => false,
            Self::Mixed => round <= rounds.div_ceil(2),
        }
    }
}

/// A store broken on purpose, to show the checker catches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Break {
    /// The catalog pushes no invalidation to the front-end (read-your-writes fails).
    SkipInvalidation,
    /// The catalog puts a confirmed reservation's units back on sale (stock-conservation
    /// fails).
    ReleaseConfirmed,
    /// Replicas answer GET /orders/{n} from their own state, without the read index or the
    /// leader (linearizable-reads fails).
    LocalRead,
    /// The leader answers an order before its Raft entry commits (acked-orders-durable
    /// fails).
    AckBeforeCommit,
}

impl Break {
    pub fn name(self) -> &'static str {
        match self {
            Self::SkipInvalidation => "skip-invalidation",
            Self::ReleaseConfirmed => "release-confirmed",
            Self::LocalRead => "local-read",
            Self::AckBeforeCommit => "ack-before-commit",
        }
    }

    /// The check that must fail.
    pub fn check(self) -> &'static str {
        match self {
            Self::SkipInvalidation => "read-your-writes",
            Self::ReleaseConfirmed => "stock-conservation",
            Self::LocalRead => "linearizable-reads",
            Self::AckBeforeCommit => "acked-orders-durable",
        }
    }

    /// The faults that expose it (a bug that only shows when the leader changes needs rounds
    /// that change it); `None`: it shows without any fault, so every fault will do.
    fn faults(self) -> Option<&'static [&'static str]> {
        match self {
            Self::SkipInvalidation | Self::ReleaseConfirmed => None,
            Self::LocalRead => Some(&["partition-leader", "kill-leader", "bounce-frontend"]),
            Self::AckBeforeCommit => Some(&["kill-leader", "partition-leader", "pause-leader"]),
        }
    }

    /// The variable that breaks the service, and its service's name.
    fn variable(self) -> &'static str {
        match self {
            Self::SkipInvalidation | Self::ReleaseConfirmed => "TOYSTORE_CATALOG_BREAK",
            Self::LocalRead | Self::AckBeforeCommit => "TOYSTORE_REPLICA_BREAK",
        }
    }
}

/// `toystore-lab verify`'s options.
#[derive(Clone, Debug, Args)]
pub struct VerifyOptions {
    /// Number of nemesis rounds (one fault each).
    #[arg(long, value_parser = positive)]
    pub rounds: usize,
    /// Seed of the client and of the fault schedule (default: random, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// How long each fault lasts, seconds (a pause lasts at least 2).
    #[arg(long, default_value_t = 5.0)]
    pub fault_secs: f64,
    /// Iterations per client session (default: as many as the rounds last; the client is
    /// stopped with SIGINT once they are over).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub iterations: Option<u64>,
    /// Undisturbed load between a round's recovery and the next fault, seconds.
    #[arg(long, default_value_t = 2.0)]
    pub quiet_secs: f64,
    /// Short-retention mode: the store forgets request ids after SECS seconds
    /// (TOYSTORE_DEDUP_RETENTION_SECS; the reservation timeout becomes SECS/4 when shorter
    /// than its 10 s default), and 2 of the 5 sessions re-send acknowledged orders with the
    /// same Idempotency-Key within that window and after it. The client then runs at least
    /// 2 x SECS + 10 s.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(6..=86_400))]
    pub retention: Option<u64>,
    /// Draw the faults from this comma-separated list only (default: every fault; with
    /// --break, the faults that expose it).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub faults: Vec<String>,
    /// The front-end's cache of committed orders (default mixed; off with --break
    /// local-read).
    #[arg(long, value_enum)]
    pub order_cache: Option<OrderCache>,
    /// Run a deliberately broken store, to show the checker catches it (the run then ends
    /// with status 1 when it did).
    #[arg(long = "break", value_enum, value_name = "KIND")]
    pub break_kind: Option<Break>,
    /// Leave the hosts up at the end (default: cluster/hosts.sh down, data kept).
    #[arg(long)]
    pub keep: bool,
    /// The front-end's order cache capacity in rounds where it is on (default the
    /// front-end's).
    #[arg(long, env = "TOYSTORE_ORDER_CACHE_CAPACITY", value_name = "N")]
    pub order_cache_capacity: Option<String>,
    /// Initial stock of every toy.
    #[arg(long, env = "TOYSTORE_INITIAL_STOCK", default_value_t = 1000)]
    pub initial_stock: u64,
    /// Seconds between restocks.
    #[arg(long, env = "TOYSTORE_RESTOCK_SECS", default_value_t = 2)]
    pub restock_secs: u64,
    /// The reservation timeout the services use (default 10 000, or retention/4 when that is
    /// shorter, as the replicas require).
    #[arg(long, env = "TOYSTORE_RESERVATION_TIMEOUT_MS", value_name = "MS")]
    pub reservation_timeout: Option<u64>,
    /// Seconds the store may take to recover after a heal.
    #[arg(long, env = "TOYSTORE_VERIFY_SETTLE_TIMEOUT", default_value_t = 60)]
    pub settle_timeout: u64,
    /// Seconds to wait for the client after SIGINT before killing it.
    #[arg(long, env = "TOYSTORE_VERIFY_CLIENT_TIMEOUT", default_value_t = 600)]
    pub client_timeout: u64,
    /// The run's files (default <repo>/run/verify).
    #[arg(long, env = "TOYSTORE_VERIFY_HOME", value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// cluster/hosts.sh's run directory (default <repo>/run/hosts).
    #[arg(long, env = "TOYSTORE_HOSTS_HOME", value_name = "DIR")]
    pub hosts_home: Option<PathBuf>,
    /// Prefix of the namespaces and interfaces (cluster/hosts.sh's default toy-).
    #[arg(long, env = "TOYSTORE_HOSTS_PREFIX")]
    pub hosts_prefix: Option<String>,
    /// The private A.B.C.0/24 the hosts live in (cluster/hosts.sh's default 10.77.0.0/24).
    #[arg(long, env = "TOYSTORE_HOSTS_SUBNET")]
    pub hosts_subnet: Option<String>,
    #[command(flatten)]
    pub tree: Tree,
}

impl VerifyOptions {
    /// Parses `verify`'s arguments (for tests and other programs that run a verification).
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            options: VerifyOptions,
        }
        let args = std::iter::once("verify".into()).chain(args.into_iter().map(Into::into));
        let wrapper: Wrapper = clap::Parser::try_parse_from(args)?;
        Ok(wrapper.options)
    }

    /// The nemeses the run draws from, checked.
    pub fn nemeses(&self) -> anyhow::Result<Vec<Box<dyn Nemesis>>> {
        ensure!(
            self.fault_secs.is_finite() && self.fault_secs > 0.0,
            "--fault-secs {} is not a positive number of seconds",
            self.fault_secs
        );
        ensure!(
            self.quiet_secs.is_finite() && self.quiet_secs >= 0.0,
            "--quiet-secs {} is not a number of seconds",
            self.quiet_secs
        );
        let names: Vec<String> = if !self.faults.is_empty() {
            self.faults.clone()
        } else if let Some(faults) = self.break_kind.and_then(Break::faults) {
            faults.iter().map(|f| (*f).to_owned()).collect()
        } else {
            nemesis::names().iter().map(|f| (*f).to_owned()).collect()
        };
        let mut chosen: Vec<Box<dyn Nemesis>> = Vec::new();
        for name in &names {
            let Some(nemesis) = nemesis::by_name(name) else {
                bail!(
                    "--faults: unknown fault '{name}' ({})",
                    nemesis::names().join(", ")
                );
            };
            ensure!(
                chosen.iter().all(|n| n.name() != name),
                "--faults names {name} twice"
            );
            chosen.push(nemesis);
        }
        ensure!(!chosen.is_empty(), "--faults needs at least one fault");
        Ok(chosen)
    }

    pub fn fault(&self) -> Duration {
        Duration::from_secs_f64(self.fault_secs)
    }

    pub fn quiet(&self) -> Duration {
        Duration::from_secs_f64(self.quiet_secs)
    }

    pub fn iterations_text(&self) -> String {
        self.iterations.map_or_else(
            || "running until the rounds end".to_owned(),
            |n| format!("x {n} iterations"),
        )
    }

    /// Without the order cache every order read reaches a replica, which is where a local
    /// read shows; with it, reads of the orders this front-end placed never leave it.
    pub fn order_cache_mode(&self) -> OrderCache {
        self.order_cache.unwrap_or(match self.break_kind {
            Some(Break::LocalRead) => OrderCache::Off,
            _ => OrderCache::Mixed,
        })
    }

    /// The replicas refuse to start unless the retention is at least 4 x the reservation
    /// timeout: a short retention needs a shorter timeout than the 10 s default.
    pub fn reservation_timeout_ms(&self) -> u64 {
        match (self.reservation_timeout, self.retention) {
            (Some(ms), _) => ms,
            (None, Some(retention)) => (retention * 1000 / 4).min(10_000),
            (None, None) => 10_000,
        }
    }

    pub fn out_dir(&self) -> PathBuf {
        absolute(
            self.out
                .clone()
                .unwrap_or_else(|| self.tree.repo().join("run/verify")),
        )
    }

    pub fn hosts_home(&self) -> PathBuf {
        absolute(
            self.hosts_home
                .clone()
                .unwrap_or_else(|| self.tree.repo().join("run/hosts")),
        )
    }

    /// `cluster/hosts.sh` with the run's environment: every service gets it.
    pub fn hosts(&self, layout: Layout, bin: &Path, log: PathBuf) -> Hosts {
        let mut hosts = Hosts::new(layout, self.tree.script("hosts.sh"), log);
        hosts.set("TOYSTORE_BIN_DIR", bin.display().to_string());
        hosts.set(
            "TOYSTORE_HOSTS_HOME",
            self.hosts_home().display().to_string(),
        );
        if let Some(prefix) = &self.hosts_prefix {
            hosts.set("TOYSTORE_HOSTS_PREFIX", prefix);
        }
        if let Some(subnet) = &self.hosts_subnet {
            hosts.set("TOYSTORE_HOSTS_SUBNET", subnet);
        }
        hosts.set("TOYSTORE_INITIAL_STOCK", self.initial_stock.to_string());
        hosts.set("TOYSTORE_RESTOCK_SECS", self.restock_secs.to_string());
        if let Some(retention) = self.retention {
            // One variable for every service that remembers request ids; the client judges
            // its re-sends by the same value.
            hosts.set("TOYSTORE_DEDUP_RETENTION_SECS", retention.to_string());
        }
        if self.retention.is_some() || self.reservation_timeout.is_some() {
            hosts.set(
                "TOYSTORE_RESERVATION_TIMEOUT_MS",
                self.reservation_timeout_ms().to_string(),
            );
        }
        // A run without --break is never broken by a variable left in the caller's
        // environment.
        hosts.unset("TOYSTORE_CATALOG_BREAK");
        hosts.unset("TOYSTORE_REPLICA_BREAK");
        if let Some(kind) = self.break_kind {
            hosts.set("TOYSTORE_FAULT_INJECTION", "1");
            hosts.set(kind.variable(), kind.name());
        }
        hosts
    }

    /// The load client's arguments: five sessions ordering with probability 0.8 up to 3 units,
    /// recording their history to `history` and reading orders back from the replicas; in
    /// short-retention mode two of them re-send keys within and after the window.
    pub fn client_args(&self, layout: &Layout, seed: u64, history: &Path) -> Vec<String> {
        let mut args: Vec<String> = [
            "--frontend",
            &layout.frontend_url(),
            "--clients",
            "5",
            "--prob",
            "0.8",
            "--max-quantity",
            "3",
            "--iterations",
            &self.iterations.unwrap_or(1_000_000_000).to_string(),
            "--seed",
            &seed.to_string(),
            "--history",
            &history.display().to_string(),
            "--quiet",
            "--read-replicas",
            &layout.nodes_arg(),
        ]
        .iter()
        .map(|w| (*w).to_owned())
        .collect();
        if let Some(retention) = self.retention {
            args.extend([
                "--reuse-sessions".to_owned(),
                REUSE_SESSIONS.to_string(),
                "--retention".to_owned(),
                retention.to_string(),
            ]);
        }
        args
    }

    /// The arguments that repeat this run with `seed`.
    pub fn repeat_args(&self, seed: u64) -> String {
        let mut args = format!(
            "--rounds {} --seed {seed} --fault-secs {}",
            self.rounds, self.fault_secs
        );
        if self.quiet_secs != 2.0 {
            args.push_str(&format!(" --quiet-secs {}", self.quiet_secs));
        }
        if let Some(iterations) = self.iterations {
            args.push_str(&format!(" --iterations {iterations}"));
        }
        if let Some(retention) = self.retention {
            args.push_str(&format!(" --retention {retention}"));
        }
        if !self.faults.is_empty() {
            args.push_str(&format!(" --faults {}", self.faults.join(",")));
        }
        if let Some(cache) = self.order_cache {
            args.push_str(&format!(" --order-cache {}", cache.name()));
        }
        if let Some(kind) = self.break_kind {
            args.push_str(&format!(" --break {}", kind.name()));
        }
        args
    }
}

fn positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("'{text}' is not a positive whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<VerifyOptions, String> {
        VerifyOptions::from_args(args.iter().copied()).map_err(|e| e.to_string())
    }

    #[test]
    fn the_client_runs_until_stopped_and_reuses_keys_only_with_a_short_retention() {
        let layout = Layout::of_hosts().expect("the compiled-in layout");
        let history = Path::new("/h.jsonl");
        let plain = parse(&["--rounds", "1"])
            .expect("valid")
            .client_args(&layout, 9, history);
        let joined = plain.join(" ");
        assert!(
            joined.contains("--iterations 1000000000 --seed 9 --history /h.jsonl"),
            "{joined}"
        );
        assert!(!joined.contains("--reuse-sessions"), "{joined}");
        let short = parse(&["--rounds", "1", "--retention", "20"]).expect("valid");
        let joined = short.client_args(&layout, 9, history).join(" ");
        assert!(
            joined.ends_with("--reuse-sessions 2 --retention 20"),
            "{joined}"
        );
        let client = <crate::Config as clap::Parser>::try_parse_from(
            std::iter::once("client".to_owned()).chain(short.client_args(&layout, 9, history)),
        );
        assert!(
            client.is_ok(),
            "the client accepts them: {:?}",
            client.err()
        );
    }

    #[test]
    fn rounds_are_required_and_positive() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["--rounds", "0"]).is_err());
        assert_eq!(parse(&["--rounds", "3"]).map(|o| o.rounds), Ok(3));
    }

    #[test]
    fn a_retention_below_six_seconds_is_refused_and_shortens_the_reservation_timeout() {
        assert!(parse(&["--rounds", "1", "--retention", "5"]).is_err());
        let options = parse(&["--rounds", "1", "--retention", "20"]).expect("valid");
        assert_eq!(options.reservation_timeout_ms(), 5_000);
        let options = parse(&["--rounds", "1", "--retention", "600"]).expect("valid");
        assert_eq!(options.reservation_timeout_ms(), 10_000);
    }

    #[test]
    fn the_faults_come_from_the_list_or_the_break_or_all() {
        let names = |args: &[&str]| -> Result<Vec<&'static str>, String> {
            let options = parse(args)?;
            options
                .nemeses()
                .map(|n| n.iter().map(|n| n.name()).collect())
                .map_err(|e| e.to_string())
        };
        assert_eq!(names(&["--rounds", "1"]).map(|n| n.len()), Ok(10));
        assert_eq!(
            names(&["--rounds", "1", "--faults", "kill-leader,heal-nothing"])
                .map_err(|e| e.contains("unknown fault 'heal-nothing'")),
            Err(true)
        );
        assert!(names(&["--rounds", "1", "--faults", "kill-leader,kill-leader"]).is_err());
        assert_eq!(
            names(&["--rounds", "1", "--break", "ack-before-commit"]),
            Ok(vec!["kill-leader", "partition-leader", "pause-leader"])
        );
        assert!(parse(&["--rounds", "1", "--break", "drop-tables"]).is_err());
    }

    #[test]
    fn mixed_caching_is_on_for_the_first_half_of_the_rounds() {
        let on: Vec<bool> = (1..=5).map(|r| OrderCache::Mixed.on_in(r, 5)).collect();
        assert_eq!(on, [true, true, true, false, false]);
        let local = parse(&["--rounds", "2", "--break", "local-read"]).expect("valid");
        assert_eq!(local.order_cache_mode(), OrderCache::Off);
    }

    #[test]
    fn the_repeat_line_gives_back_the_same_options() {
        let options = parse(&[
            "--rounds",
            "4",
            "--retention",
            "20",
            "--faults",
            "kill-leader,kill-catalog",
            "--order-cache",
            "off",
        ])
        .expect("valid");
        let again = options.repeat_args(77);
        let mut words: Vec<&str> = again.split(' ').collect();
        words.retain(|w| !w.is_empty());
        let reparsed = parse(&words).expect("the repeat line parses");
        assert_eq!(reparsed.seed, Some(77));
        assert_eq!(reparsed.rounds, 4);
        assert_eq!(reparsed.retention, Some(20));
        assert_eq!(reparsed.faults, ["kill-leader", "kill-catalog"]);
        assert_eq!(reparsed.order_cache, Some(OrderCache::Off));
    }
}
