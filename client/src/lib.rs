//! Load client for the toy store.
//!
//! [`run`] starts `--clients` concurrent sessions against the front-end. Each queries random
//! toys and, with probability `--prob`, orders one that shows stock, remembering every order the
//! store acknowledges. When all sessions are done, every acknowledged order is read back with
//! `GET /orders/{n}` and compared with what was placed. With `--history`, the sessions also
//! read some orders while they run ([`probe`]), so that reads taken during faults are in the
//! history for `toystore-check` to judge. The [`Report`] holds latency per
//! request type, totals, and every verification failure; [`Report::succeeded`] is the verdict.
//!
//! Modules:
//! - [`config`]: the command line, validated by clap.
//! - [`session`]: one shopper's loop, and the retry rule.
//! - [`reuse`]: which acknowledged keys a key-reuse session sends again, and when.
//! - [`probe`]: which orders the sessions read back while the load runs (with `--history`).
//! - [`history`]: the `--history` file `toystore-check` verifies, and [`final_state`]: the
//!   store's state it is checked against (`toystore-state`).
//! - [`verify`]: the pure checks over placed orders and lookup answers.
//! - [`stats`]: latency histograms per request type (reused by the benchmark tool).
//! - [`tally`]: what each worker counts, merged at the end.
//! - [`report`], [`output`]: the printed report and the CSV/JSON files.
//! - [`progress`]: the progress bar or progress lines.
//! - [`lab`]: the `toystore-lab` tooling that replaces the engine in `cluster/*.sh`: verify,
//!   chaos, experiment and the benchmarks.

pub mod config;
pub mod error;
pub mod final_state;
pub mod history;
pub mod lab;
pub mod output;
pub mod probe;
pub mod progress;
pub mod report;
pub mod reuse;
pub mod session;
pub mod stats;
pub mod tally;
pub mod verify;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

pub use config::{Config, OutputFile, OutputFormat};
pub use error::ClientError;
pub use report::{Report, RunParams, Totals};
pub use stats::{LatencyStats, LatencySummary, RequestKind};
pub use verify::{LookupAnswer, PlacedOrder, VerificationFailure};

use api::cli::ClusterToken;
use api::client::ServiceClient;
use api::frontend::{FrontendClient, routes};
use api::order::ReplicaClient;
use history::{History, unix_ms};
use progress::Progress;
use session::{SessionPlan, run_session, with_retries};
use tally::Tally;

/// Runs the whole load and verification described by `config` and returns its report.
///
/// Failed requests do not make this an `Err`: they are counted in the report. It fails only
/// when the run cannot happen (no toys to query, an output file that cannot be written).
pub async fn run(config: &Config) -> Result<Report, ClientError> {
    let seed = config.seed.unwrap_or_else(rand::random);
    let params = RunParams::new(config, seed);
    // Fail before sending any load if the results could not be saved afterwards.
    if let Some(out) = &config.out {
        output::check_writable(&out.path)?;
    }
    if let Some(path) = &config.timeline {
        output::check_writable(path)?;
    }
    let history = match &config.history {
        Some(path) => History::create(path)?,
        None => History::default(),
    };

    let workers = usize::try_from(config.clients).unwrap_or(usize::MAX);
    let store = FrontendClient::new(
        config.frontend.clone(),
        ServiceClient::new(config.timeout, None),
    );
    let progress = Arc::new(Progress::new(config.total_iterations(), config.quiet));
    progress.say(&format!("seed {seed} (repeat this run with --seed {seed})"));

    let run_start = Instant::now();
    let started_unix_ms = unix_ms();
    // SIGINT or SIGTERM ends the sessions after their current iteration; the run then verifies
    // and writes its files as usual.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let on_signal = {
        let stop = stop.clone();
        tokio::spawn(async move {
            api::server::shutdown_signal().await;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        })
    };
    let keep_timeline = config.timeline.is_some();
    let toys = toy_names(&store).await?;
    progress.say(&format!(
        "{} toys; {} sessions x {} iterations against {}",
        toys.len(),
        config.clients,
        config.iterations,
        params.frontend
    ));

    let mut tally = Tally::new(run_start, keep_timeline);
    // Reads during the run are for the checker: only when a history records them.
    let reads = config
        .history
        .is_some()
        .then(|| Arc::new(probe::ReadTargets::default()));
    // Replicas to read acknowledged orders back from, past the front-end (`--read-replicas`).
    let replicas: Arc<[ReplicaClient]> = match &config.read_replicas {
        Some(nodes) => {
            let http = ServiceClient::new(
                config.timeout,
                config.cluster_token.as_ref().map(ClusterToken::expose),
            );
            ReplicaClient::all(nodes, &http).into_values().collect()
        }
        None => Arc::from([]),
    };
    let sessions: Vec<_> = (0..config.clients)
        .map(|index| {
            let plan = SessionPlan {
                index,
                seed,
                iterations: config.iterations,
                prob: config.prob,
                max_quantity: config.max_quantity,
                history: history.clone(),
                stop_at: config.duration.map(|d| run_start + d),
                stop: stop.clone(),
                reuse: (index < config.reuse_sessions).then_some(config.retention),
                reads: reads.clone(),
                replicas: replicas.clone(),
            };
            let session = run_session(
                store.clone(),
                toys.clone(),
                plan,
                progress.clone(),
                Tally::new(run_start, keep_timeline),
            );
            (index, tokio::spawn(session))
        })
        .collect();
    for (index, handle) in sessions {
        let counted = handle.await.map_err(|err| ClientError::TaskFailed {
            task: format!("session {index}"),
            reason: err.to_string(),
        })?;
        tally.merge(counted);
    }
    progress.finish();
    on_signal.abort();

    let numbers = verify::numbers_to_look_up(&tally.placed);
    progress.say(&format!("verifying {} orders", numbers.len()));
    let answers = look_up_orders(&store, &mut tally, numbers, workers, run_start, &history).await?;
    let verification_failures = verify::verify(&tally.placed, &answers);

    let mut timeline = tally.timeline.take().unwrap_or_default();
    timeline.sort_by_key(|entry| entry.start);
    let report = Report {
        params,
        toys: toys.len(),
        latency: tally.latency,
        orders: tally.placed,
        out_of_stock: tally.out_of_stock,
        reused: tally.reused,
        verification_failures,
        error_samples: tally.error_samples,
        wall_time: run_start.elapsed(),
        timeline,
        started_unix_ms,
    };

    if let Some(out) = &config.out {
        output::write_summary(out, &report)?;
    }
    if let Some(path) = &config.timeline {
        output::write_timeline(path, &report.timeline)?;
    }
    if let Some(path) = &config.history {
        history.finish(path)?;
    }
    Ok(report)
}

/// `GET /products`, retried like an order: without the names there is nothing to query.
async fn toy_names(store: &FrontendClient) -> Result<Arc<[String]>, ClientError> {
    let url = store.url(routes::PRODUCTS, &[]).to_string();
    // A throwaway tally: this request is not one of the three measured kinds.
    let mut scratch = Tally::new(Instant::now(), false);
    let (reply, _) = with_retries(&mut scratch, RequestKind::Query, 0, || store.products()).await;
    let products = reply.map_err(|failure| ClientError::ProductList {
        url: url.clone(),
        reason: failure.to_string(),
    })?;
    if products.is_empty() {
        return Err(ClientError::EmptyCatalog { url });
    }
    Ok(products.into_iter().map(|p| p.name).collect())
}

/// Looks up every number with `workers` concurrent workers, each retrying like an order (a
/// lookup that cannot get through is a request error, not a lost order). Lookup latencies,
/// errors and timeline rows are added to `tally`.
async fn look_up_orders(
    store: &FrontendClient,
    tally: &mut Tally,
    numbers: Vec<u64>,
    workers: usize,
    run_start: Instant,
    history: &History,
) -> Result<HashMap<u64, LookupAnswer>, ClientError> {
    // Timeline rows of a lookup carry the session that placed the order (the first one, if
    // the number was handed out twice).
    let session_of: Arc<HashMap<u64, u64>> = Arc::new(
        tally
            .placed
            .iter()
            .rev()
            .map(|o| (o.number, o.session))
            .collect(),
    );
    let keep_timeline = tally.timeline.is_some();
    let chunk = numbers.len().div_ceil(workers.max(1)).max(1);
    let handles: Vec<_> = numbers
        .chunks(chunk)
        .map(|chunk| {
            let (store, chunk, session_of) = (store.clone(), chunk.to_vec(), session_of.clone());
            let history = history.clone();
            tokio::spawn(async move {
                let mut counted = Tally::new(run_start, keep_timeline);
                let mut answers = Vec::with_capacity(chunk.len());
                for number in chunk {
                    let session = session_of.get(&number).copied().unwrap_or_default();
                    let answer = look_up(&store, &mut counted, number, session, &history).await;
                    answers.push((number, answer));
                }
                (counted, answers)
            })
        })
        .collect();

    let mut all = HashMap::with_capacity(numbers.len());
    for handle in handles {
        let (counted, answers) = handle.await.map_err(|err| ClientError::TaskFailed {
            task: "a verification worker".to_string(),
            reason: err.to_string(),
        })?;
        tally.merge(counted);
        all.extend(answers);
    }
    Ok(all)
}

/// One `GET /orders/{number}`, sorted into what verification needs to know.
async fn look_up(
    store: &FrontendClient,
    tally: &mut Tally,
    number: u64,
    session: u64,
    history: &History,
) -> LookupAnswer {
    let invoke = unix_ms();
    let (reply, latency) =
        with_retries(tally, RequestKind::Lookup, session, || store.lookup(number)).await;
    let recorded = match &reply {
        Ok(record) => Ok(Some(record)),
        Err(failure) if failure.is_not_found() => Ok(None),
        Err(failure) => Err(failure),
    };
    history.read(session, invoke, number, recorded);
    match reply {
        Ok(record) => {
            tally.answered(RequestKind::Lookup, latency);
            LookupAnswer::Found(record)
        }
        Err(failure) if failure.is_not_found() => {
            // An answer, and the one verification is looking for: the order is gone.
            tally.answered(RequestKind::Lookup, latency);
            LookupAnswer::NotFound
        }
        Err(failure) => {
            let message = format!("lookup of order {number}: {failure}");
            tally.failed(RequestKind::Lookup, message.clone());
            LookupAnswer::Failed(message)
        }
    }
}
