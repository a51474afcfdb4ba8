//! The client's command line: what a run does, validated before anything is sent.
//!
//! Every check happens in a clap value parser, so a bad flag is a usage error (exit code 2) with
//! a sentence naming the problem, and [`Config::try_parse_from`] gives tests the same answers.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use reqwest::Url;

/// Load client for the toy store: concurrent sessions that query toys, order some of them, and
/// at the end check that every acknowledged order is stored as it was placed.
#[derive(Debug, Clone, Parser)]
#[command(name = "client", version)]
pub struct Config {
    /// Base URL of the front-end (http only).
    #[arg(
        long,
        env = "TOYSTORE_FRONTEND_URL",
        default_value = "http://127.0.0.1:8000",
        value_parser = parse_frontend_url,
        value_name = "URL"
    )]
    pub frontend: Url,

    /// Probability of ordering after a query that shows the toy in stock, from 0 to 1.
    #[arg(
        long,
        env = "TOYSTORE_CLIENT_PROB",
        default_value = "0.5",
        value_parser = parse_probability,
        allow_negative_numbers = true,
        value_name = "P"
    )]
    pub prob: f64,

    /// Queries per session.
    #[arg(
        long,
        env = "TOYSTORE_CLIENT_ITERATIONS",
        default_value = "100",
        value_parser = parse_at_least_one,
        allow_negative_numbers = true,
        value_name = "N"
    )]
    pub iterations: u64,

    /// Stop every session after this many seconds, even with iterations left (for runs that
    /// must end on time, such as verification under faults).
    #[arg(long, env = "TOYSTORE_CLIENT_DURATION_SECS", value_parser = api::cli::seconds,
          value_name = "SECS")]
    pub duration: Option<std::time::Duration>,

    /// Concurrent sessions.
    #[arg(
        long,
        env = "TOYSTORE_CLIENT_SESSIONS",
        default_value = "5",
        value_parser = parse_at_least_one,
        allow_negative_numbers = true,
        value_name = "C"
    )]
    pub clients: u64,

    /// Seed of the random choices; a random one is picked (and printed) when absent, so any
    /// run can be repeated.
    #[arg(long, env = "TOYSTORE_CLIENT_SEED", value_name = "S")]
    pub seed: Option<u64>,

    /// Largest quantity one order asks for: each order asks for 1..=min(K, shown quantity).
    #[arg(
        long,
        env = "TOYSTORE_CLIENT_MAX_QUANTITY",
        default_value = "1",
        value_parser = parse_max_quantity,
        allow_negative_numbers = true,
        value_name = "K"
    )]
    pub max_quantity: u32,

    /// Where to write the per-request-type latency table: FILE.csv or FILE.json.
    #[arg(long, env = "TOYSTORE_CLIENT_OUT", value_parser = parse_output_file, value_name = "FILE")]
    pub out: Option<OutputFile>,

    /// Where to write one CSV row per request (start_ms,kind,latency_ms,status,session).
    #[arg(long, env = "TOYSTORE_CLIENT_TIMELINE", value_name = "FILE")]
    pub timeline: Option<PathBuf>,

    /// Where to write one JSON line per operation (query, order, lookup) for `toystore-check`.
    #[arg(long, env = "TOYSTORE_CLIENT_HISTORY", value_name = "FILE")]
    pub history: Option<PathBuf>,

    /// How many of the sessions (the first ones) also send some acknowledged orders again
    /// with the same Idempotency-Key, toy and quantity: within the store's dedup retention
    /// (it must answer the same number) and after it (a new order or a 409 refusal may
    /// answer). Needs `--retention` to match the store's.
    #[arg(
        long,
        env = "TOYSTORE_CLIENT_REUSE_SESSIONS",
        default_value_t = 0,
        value_name = "N"
    )]
    pub reuse_sessions: u64,

    /// With `--history`: the order replicas as ID=URL pairs. Every acknowledged order is then
    /// read back at once from one of them, chosen at random, past the front-end: a replica must
    /// find an order as soon as it was acknowledged, whether it leads or not (a follower that
    /// has not applied it yet asks the leader). Needs the cluster token.
    #[arg(long, value_name = "ID=URL,...", requires = "history")]
    pub read_replicas: Option<api::cluster::NodeAddrs>,

    /// The cluster token, for `--read-replicas` (replicas answer reads only to the cluster).
    #[arg(long = "cluster-token", env = "TOYSTORE_CLUSTER_TOKEN", hide_env_values = true,
          value_parser = api::cli::ClusterToken::parse)]
    pub cluster_token: Option<api::cli::ClusterToken>,

    /// The store's dedup retention in seconds (the replicas' and the catalog's
    /// `TOYSTORE_DEDUP_RETENTION_SECS`, whose value is the default here): when key-reuse
    /// sessions re-send, and what the history says the store had to remember.
    #[arg(long, env = "TOYSTORE_DEDUP_RETENTION_SECS", default_value = "86400",
          value_parser = api::cli::seconds, value_name = "SECS")]
    pub retention: Duration,

    /// Deadline of one HTTP request, in seconds (longer than the front-end's own order retry
    /// budget, so a failover shows up as a slow answer rather than a client-side error).
    #[arg(
        long,
        env = "TOYSTORE_CLIENT_TIMEOUT_SECS",
        default_value = "10",
        value_parser = api::cli::seconds,
        value_name = "SECS"
    )]
    pub timeout: Duration,

    /// No progress bar or progress lines; only the final report.
    #[arg(long, short)]
    pub quiet: bool,
}

impl Config {
    /// Total iterations over all sessions: what the progress bar counts.
    pub fn total_iterations(&self) -> u64 {
        self.iterations.saturating_mul(self.clients)
    }

    /// The front-end URL as people write it, without a trailing slash.
    pub fn frontend_display(&self) -> &str {
        self.frontend.as_str().trim_end_matches('/')
    }
}

/// The format of the `--out` file, chosen by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Csv,
    Json,
}

/// The `--out` file and the format its extension asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub path: PathBuf,
    pub format: OutputFormat,
}

impl fmt::Display for OutputFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())
    }
}

pub(crate) fn parse_frontend_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|err| {
        format!("{text:?} is not a URL ({err}); expected e.g. http://127.0.0.1:8000")
    })?;
    if url.scheme() != "http" {
        return Err(format!(
            "{text:?} must start with http:// (the front-end speaks plain HTTP)"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?} has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?} must not have a query or a fragment"));
    }
    Ok(url)
}

fn parse_probability(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        Ok(_) => Err(format!(
            "{text:?} is not a probability: it must be between 0 and 1"
        )),
        Err(_) => Err(format!(
            "{text:?} is not a number: a probability between 0 and 1 is expected"
        )),
    }
}

fn parse_at_least_one(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{text:?} must be a whole number, at least 1")),
    }
}

fn parse_max_quantity(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "{text:?} must be a whole number from 1 to {}",
            u32::MAX
        )),
    }
}

fn parse_output_file(text: &str) -> Result<OutputFile, String> {
    let path = PathBuf::from(text);
    let format = match extension(&path).as_deref() {
        Some("csv") => OutputFormat::Csv,
        Some("json") => OutputFormat::Json,
        _ => {
            return Err(format!(
                "{text:?} must end in .csv or .json (the extension picks the format)"
            ));
        }
    };
    Ok(OutputFile { path, format })
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|ext| ext.to_str())
        .map(str::to_ascii_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("client").chain(args.iter().copied()))
    }

    /// The usage error for `args`, with its rendered text.
    fn rejected(args: &[&str]) -> String {
        match parse(args) {
            Ok(config) => panic!("{args:?} was accepted: {config:?}"),
            Err(err) => {
                assert_eq!(err.kind(), ErrorKind::ValueValidation, "{err}");
                assert_eq!(err.exit_code(), 2);
                err.to_string()
            }
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = parse(&["--frontend", "http://127.0.0.1:8000"]).expect("defaults parse");
        assert_eq!(config.frontend_display(), "http://127.0.0.1:8000");
        assert_eq!(config.prob, 0.5);
        assert_eq!(config.iterations, 100);
        assert_eq!(config.clients, 5);
        assert_eq!(config.max_quantity, 1);
        assert_eq!(config.timeout, Duration::from_secs(10));
        assert!(config.out.is_none());
        assert!(config.timeline.is_none());
        assert!(!config.quiet);
        assert_eq!(config.reuse_sessions, 0);
    }

    #[test]
    fn accepts_a_full_command_line() {
        let config = parse(&[
            "--frontend",
            "http://localhost:9000/",
            "--prob",
            "1",
            "--iterations",
            "7",
            "--clients",
            "3",
            "--seed",
            "42",
            "--max-quantity",
            "4",
            "--out",
            "results/run.JSON",
            "--timeline",
            "t.csv",
            "--quiet",
        ])
        .expect("valid flags parse");
        assert_eq!(config.frontend_display(), "http://localhost:9000");
        assert_eq!(config.prob, 1.0);
        assert_eq!(config.total_iterations(), 21);
        assert_eq!(config.seed, Some(42));
        assert_eq!(config.max_quantity, 4);
        let out = config.out.expect("--out was given");
        assert_eq!(out.format, OutputFormat::Json);
        assert_eq!(config.timeline, Some(PathBuf::from("t.csv")));
        assert!(config.quiet);
    }

    #[test]
    fn key_reuse_takes_sessions_and_the_store_retention() {
        let config = parse(&["--reuse-sessions", "2", "--retention", "20"]).expect("parses");
        assert_eq!(config.reuse_sessions, 2);
        assert_eq!(config.retention, Duration::from_secs(20));
        assert!(rejected(&["--retention", "0"]).contains("between 0 and 86400"));
    }

    #[test]
    fn probability_must_be_between_0_and_1() {
        assert!(rejected(&["--prob", "1.5"]).contains("between 0 and 1"));
        assert!(rejected(&["--prob", "-0.1"]).contains("between 0 and 1"));
        assert!(rejected(&["--prob", "NaN"]).contains("between 0 and 1"));
        assert!(rejected(&["--prob", "half"]).contains("not a number"));
        assert_eq!(parse(&["--prob", "0"]).map(|c| c.prob).ok(), Some(0.0));
    }

    #[test]
    fn counts_must_be_at_least_one() {
        assert!(rejected(&["--iterations", "0"]).contains("at least 1"));
        assert!(rejected(&["--clients", "0"]).contains("at least 1"));
        assert!(rejected(&["--iterations", "-3"]).contains("at least 1"));
        assert!(rejected(&["--max-quantity", "0"]).contains("from 1"));
    }

    #[test]
    fn frontend_must_be_an_http_url() {
        assert!(rejected(&["--frontend", "https://127.0.0.1:8000"]).contains("http://"));
        assert!(rejected(&["--frontend", "127.0.0.1:8000"]).contains("http://"));
        assert!(rejected(&["--frontend", "not a url"]).contains("not a URL"));
        assert!(rejected(&["--frontend", "http://h:1/?x=1"]).contains("query"));
    }

    #[test]
    fn out_file_extension_picks_the_format() {
        let csv = parse(&["--out", "lat.csv"]).expect("csv accepted");
        assert_eq!(csv.out.map(|o| o.format), Some(OutputFormat::Csv));
        assert!(rejected(&["--out", "lat.txt"]).contains(".csv or .json"));
        assert!(rejected(&["--out", "lat"]).contains(".csv or .json"));
    }
}
