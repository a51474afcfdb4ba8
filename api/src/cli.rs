//! Command-line pieces that several binaries share: value parsers, and the flag groups the
//! services flatten into their `Config` so that a flag shared by two services is defined once
//! (same name, environment variable, default and rules everywhere).
//!
//! - [`ClusterAuth`]: `--cluster-token` / `--insecure`, in all three services;
//! - [`PeerArgs`]: `--catalog` and `--nodes`, in the front-end and the replicas;
//! - [`BatchArgs`]: `--batch-max`, in the front-end and the replicas;
//! - [`RetentionArgs`]: `--dedup-retention`, in the replicas and the catalog.
//! - [`ServeArgs`]: the connection limits of [`crate::connections`], in all three services.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use subtle::ConstantTimeEq;

use crate::cluster::NodeAddrs;

/// Seconds, fractions allowed: `10`, `0.5`.
pub fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
        return Err(format!("{text:?} must be between 0 and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Whole milliseconds, at least 1: `250`.
pub fn millis(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<u64>() {
        Ok(ms) if (1..=86_400_000).contains(&ms) => Ok(Duration::from_millis(ms)),
        _ => Err(format!(
            "{text:?} is not a number of milliseconds between 1 and 86400000"
        )),
    }
}

/// The cluster's shared secret (`X-Cluster-Token`): what every internal endpoint and Raft RPC
/// requires, and what a service sends on its own calls to the others.
///
/// Its `Debug` never shows it (configurations are logged and printed), and [`Self::matches`]
/// compares in constant time, so the time an answer takes says nothing about how much of a
/// guess was right.
///
/// No `PartialEq`: the only comparison is the constant-time one.
#[derive(Clone)]
pub struct ClusterToken(Arc<str>);

/// Longest accepted cluster token, in bytes (`cluster/lib.sh` generates 64 hex digits).
pub const MAX_CLUSTER_TOKEN_LEN: usize = 1024;

impl ClusterToken {
    /// A token is 1 to [`MAX_CLUSTER_TOKEN_LEN`] visible ASCII characters: it travels as an
    /// HTTP header value, and one with spaces or control characters would be cut or refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty()
            || text.len() > MAX_CLUSTER_TOKEN_LEN
            || !text.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(format!(
                "a cluster token must be 1 to {MAX_CLUSTER_TOKEN_LEN} visible ASCII characters (no spaces)"
            ));
        }
        Ok(Self(Arc::from(text)))
    }

    /// Whether `given` (a request's `X-Cluster-Token`) is this token. Constant time in the
    /// content; a wrong length is told apart at once, which reveals only the length.
    pub fn matches(&self, given: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(given).into()
    }

    /// The secret itself, for the header of an outbound call.
    pub fn expose(&self) -> Arc<str> {
        self.0.clone()
    }
}

impl fmt::Debug for ClusterToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::str::FromStr for ClusterToken {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::parse(text)
    }
}

/// What a service says when it is started with neither a token nor `--insecure`.
pub const MISSING_TOKEN: &str = "no cluster token: set TOYSTORE_CLUSTER_TOKEN (or --cluster-token) to the cluster's shared secret, or pass --insecure (TOYSTORE_INSECURE=1) to run with every internal endpoint open";

/// `--cluster-token` and `--insecure`: how a service guards its internal endpoints.
///
/// A service refuses to start with neither ([`Self::token`]): an unset variable must not
/// quietly open the endpoints that move stock and Raft state to anyone who can reach the
/// port.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterAuth {
    /// Shared secret every internal endpoint and Raft RPC requires (X-Cluster-Token); the
    /// service also sends it on its own calls. Required unless --insecure.
    #[arg(long = "cluster-token", env = "TOYSTORE_CLUSTER_TOKEN", hide_env_values = true,
          value_parser = ClusterToken::parse)]
    pub cluster_token: Option<ClusterToken>,

    /// Run without a cluster token: internal endpoints open to anyone who can connect. Only
    /// for a machine of your own; ignored when a token is given.
    #[arg(long, env = "TOYSTORE_INSECURE", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub insecure: bool,
}

impl ClusterAuth {
    /// Internal endpoints guarded by `token`.
    pub fn with_token(token: ClusterToken) -> Self {
        Self {
            cluster_token: Some(token),
            insecure: false,
        }
    }

    /// Internal endpoints open, on purpose (tests).
    pub fn insecure() -> Self {
        Self {
            cluster_token: None,
            insecure: true,
        }
    }

    /// The token to require and send: `Ok(None)` only with `--insecure` and no token; an
    /// error ([`MISSING_TOKEN`]) with neither.
    pub fn token(&self) -> Result<Option<ClusterToken>, String> {
        match (&self.cluster_token, self.insecure) {
            (Some(token), _) => Ok(Some(token.clone())),
            (None, true) => Ok(None),
            (None, false) => Err(MISSING_TOKEN.to_string()),
        }
    }
}

/// `--catalog` and `--nodes`: where a front-end or a replica finds the other services.
#[derive(Debug, Clone, clap::Args)]
pub struct PeerArgs {
    /// Base URL of the catalog.
    #[arg(long, env = "TOYSTORE_CATALOG_URL", default_value = crate::defaults::CATALOG_URL,
          value_parser = crate::url::parse_base_url)]
    pub catalog: reqwest::Url,

    /// Every order replica as ID=URL pairs, comma-separated: the front-end's candidates for
    /// selection, and a replica's address book for Raft RPCs and forwarding (it must find its
    /// own --id there).
    #[arg(long, env = "TOYSTORE_NODES", default_value = crate::defaults::ORDER_NODES)]
    pub nodes: NodeAddrs,
}

/// `--batch-max`: one setting for batching along the order path.
#[derive(Debug, Clone, clap::Args)]
pub struct BatchArgs {
    /// Most orders in one batch: per request from the front-end to a replica (at most
    /// 1024, what a replica accepts in one request) and per Raft entry; 1 turns batching off.
    #[arg(long, env = "TOYSTORE_BATCH_MAX", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub batch_max: u64,
}

/// `--dedup-retention`: R, the one retention rule of the replicas and the catalog
/// (CONTRACT.md §5). Give every service the same value.
#[derive(Debug, Clone, clap::Args)]
pub struct RetentionArgs {
    /// R, in seconds: how long the replicas remember a request id after its order (by the
    /// clock of the Raft log; a retry within it is deduplicated, one after it is a new order).
    /// The catalog derives its reservation rules from it, with the decision horizon H = R/2: a
    /// reservation record decides only while it is younger than H; finished records are
    /// forgotten R + H after they finished. Safe while the clocks of the catalog and the
    /// replicas differ by less than R/4.
    #[arg(long = "dedup-retention", env = "TOYSTORE_DEDUP_RETENTION_SECS",
          default_value = "86400", value_parser = seconds)]
    pub dedup_retention: Duration,
}

/// The bounds on every inbound connection ([`crate::connections::Limits`]).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Once a request has begun to arrive, how long its head (request line and headers) may
    /// take to be complete, in milliseconds.
    #[arg(long = "header-timeout-ms", env = "TOYSTORE_HEADER_TIMEOUT_MS", default_value = "10000",
          value_parser = millis)]
    pub header_timeout: Duration,

    /// How long a connection may wait for a complete request (its first, or the next on
    /// keep-alive) before it is closed, in milliseconds. Keep it above the 30 s the services'
    /// own clients keep an idle connection.
    #[arg(long = "idle-timeout-ms", env = "TOYSTORE_IDLE_TIMEOUT_MS", default_value = "60000",
          value_parser = millis)]
    pub idle_timeout: Duration,

    /// How long reading a request's body and answering it may take, in milliseconds; past
    /// it the answer is 408 and the connection is closed. Keep it above the front-end's
    /// --order-retry-ms.
    #[arg(long = "request-timeout-ms", env = "TOYSTORE_REQUEST_TIMEOUT_MS",
          default_value = "30000", value_parser = millis)]
    pub request_timeout: Duration,

    /// Connections served at once; more wait in the kernel's backlog until one closes.
    #[arg(long, env = "TOYSTORE_MAX_CONNECTIONS", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Threads the service runs on. 1 runs everything on one thread (tokio's current-thread
    /// runtime), the fastest when the services share a machine's few cores; more (a
    /// multi-thread runtime) lets a service that has a host to itself use all of it. Default:
    /// the host's cores. `cluster/up.sh`, which packs every service onto one machine, passes 1
    /// unless TOYSTORE_WORKER_THREADS is set.
    #[arg(long, env = "TOYSTORE_WORKER_THREADS",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,
}

impl ServeArgs {
    /// The threads the service runs on: `--worker-threads`, else the host's cores.
    pub fn worker_threads(&self) -> usize {
        self.worker_threads.map_or_else(host_cores, usize::from)
    }

    pub fn limits(&self) -> crate::connections::Limits {
        crate::connections::Limits {
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            request_timeout: self.request_timeout,
            max_connections: self.max_connections as usize,
        }
    }
}

/// The cores this process may use (its CPU affinity and cgroup quota included); 1 if unknown.
fn host_cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(seconds("10"), Ok(Duration::from_secs(10)));
        assert_eq!(seconds("0.5"), Ok(Duration::from_millis(500)));
        assert!(seconds("0").is_err());
        assert!(seconds("-1").is_err());
        assert!(seconds("ten").is_err());
        assert!(seconds("NaN").is_err());
        assert_eq!(millis("250"), Ok(Duration::from_millis(250)));
        assert!(millis("0").is_err());
        assert!(millis("1.5").is_err());
    }

    #[derive(clap::Parser)]
    struct Service {
        #[command(flatten)]
        auth: ClusterAuth,
    }

    fn auth(args: &[&str]) -> ClusterAuth {
        use clap::Parser;
        Service::try_parse_from(std::iter::once("service").chain(args.iter().copied()))
            .expect("flags parse")
            .auth
    }

    #[test]
    fn a_service_needs_a_token_or_insecure() {
        // Neither: refused, with a sentence that names both ways out.
        let refused = auth(&[]).token().expect_err("no token, no --insecure");
        assert_eq!(refused, MISSING_TOKEN);
        assert!(refused.contains("TOYSTORE_CLUSTER_TOKEN") && refused.contains("--insecure"));
        assert!(!refused.contains('\n'), "one line");
        // --insecure on purpose: open.
        assert!(matches!(auth(&["--insecure"]).token(), Ok(None)));
        // A token: required, also when --insecure is given too.
        let token = auth(&["--cluster-token", "s3cret", "--insecure"]).token();
        assert!(matches!(token, Ok(Some(token)) if token.matches(b"s3cret")));
        // A token that cannot travel as a header is refused when parsing.
        use clap::Parser;
        assert!(Service::try_parse_from(["service", "--cluster-token", "two words"]).is_err());
        assert!(Service::try_parse_from(["service", "--cluster-token", ""]).is_err());
    }

    /// A service's command line with only the [`ServeArgs`] group.
    #[derive(clap::Parser)]
    struct Serving {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn connection_limits_default_to_the_loops_defaults() {
        use clap::Parser;
        let parsed = Serving::try_parse_from(["service"]).expect("defaults parse");
        assert_eq!(parsed.serve.limits(), crate::connections::Limits::default());
    }

    #[test]
    fn a_service_runs_on_the_hosts_cores_unless_told_how_many_threads() {
        use clap::Parser;
        let threads = |args: &[&str]| {
            Serving::try_parse_from(std::iter::once("service").chain(args.iter().copied()))
                .map(|parsed| parsed.serve.worker_threads())
        };
        if std::env::var_os("TOYSTORE_WORKER_THREADS").is_none() {
            assert_eq!(threads(&[]).ok(), Some(host_cores()));
        }
        assert_eq!(threads(&["--worker-threads", "1"]).ok(), Some(1));
        assert_eq!(threads(&["--worker-threads", "8"]).ok(), Some(8));
        assert!(threads(&["--worker-threads", "0"]).is_err());
        assert!(threads(&["--worker-threads", "many"]).is_err());
    }

    #[test]
    fn a_token_is_compared_whole_and_never_printed() {
        let token = ClusterToken::parse("s3cret-token").unwrap();
        assert!(token.matches(b"s3cret-token"));
        assert!(!token.matches(b"s3cret-tokeN"));
        assert!(!token.matches(b"s3cret"));
        assert!(!token.matches(b""));
        let shown = format!("{token:?} {:?}", ClusterAuth::with_token(token.clone()));
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
