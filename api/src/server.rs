//! The inbound HTTP plumbing every service shares.
//!
//! A service builds its own routes and metrics, then calls [`finish`] to add what every service
//! must have: `/metrics`, the error envelope for unknown routes, wrong methods, oversized and
//! malformed bodies and panics, request ids, tracing spans and per-route HTTP metrics.
//! [`spawn`] runs the result on a listener ([`crate::connections`]: timeouts on every
//! connection, a cap on their number) and returns a [`ServerHandle`] that tests and `main` both
//! use to shut it down on purpose.
//!
//! Length: 570 lines of code and 50 of tests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::Instant;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use axum::{Json, Router};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tracing::Instrument;

use crate::cli::ClusterToken;
use crate::connections::{self, Limits};
use crate::defaults::{CLUSTER_TOKEN_HEADER, MAX_JSON_BODY, REQUEST_ID_HEADER};
use crate::envelope::ApiError;
use crate::request_id::{self, valid_request_id};

/// The routes every service serves.
pub mod routes {
    /// `GET`: whether the service can do its work now.
    pub const HEALTH: &str = "/health";
    /// `GET`: Prometheus text.
    pub const METRICS: &str = "/metrics";
}

/// Installs the `tracing` subscriber: human-readable lines on stderr, filtered by `RUST_LOG`
/// (default `info`). Safe to call more than once (later calls do nothing).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, never into log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Resolves on SIGTERM or Ctrl-C: what `main` waits on before shutting a service down.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}

/// Binds a listener, with a message that names the address when it fails.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|err| std::io::Error::new(err.kind(), format!("cannot listen on {addr}: {err}")))
}

/// A running HTTP server and the background tasks of its service.
pub struct ServerHandle {
    addr: SocketAddr,
    shutdown: CancellationToken,
    failure: Failure,
    tasks: Vec<JoinHandle<()>>,
}

/// Lets a part of a service stop the whole service because it failed for good (a Raft core
/// that stopped with a fatal error): the reason is kept for `main`, which then exits non-zero,
/// and the service shuts down as it would on SIGTERM.
#[derive(Clone)]
pub struct Failure {
    reason: Arc<std::sync::OnceLock<String>>,
    shutdown: CancellationToken,
}

impl Failure {
    /// Records `reason` (the first one wins) and stops the service.
    pub fn fail(&self, reason: String) {
        tracing::error!(%reason, "stopping the service after a failure");
        let _ = self.reason.set(reason);
        self.shutdown.cancel();
    }

    pub fn reason(&self) -> Option<&str> {
        self.reason.get().map(String::as_str)
    }
}

impl ServerHandle {
    /// The address the server listens on (useful when it was bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the base URL other services use to reach this one.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The token whose cancellation stops the server and every task of the service.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// What a part of the service calls to stop it for good after a failure.
    pub fn failure(&self) -> Failure {
        self.failure.clone()
    }

    /// Adds a background task that the handle waits for on shutdown. The task must stop when
    /// [`Self::shutdown_token`] is cancelled.
    pub fn attach(&mut self, task: JoinHandle<()>) {
        self.tasks.push(task);
    }

    /// Stops accepting connections, lets in-flight requests finish, and waits for every
    /// attached task. Returns the failure that stopped the service, if one did.
    pub async fn shutdown(mut self) -> Result<(), String> {
        self.shutdown.cancel();
        for task in self.tasks.drain(..) {
            if let Err(err) = task.await
                && err.is_panic()
            {
                tracing::error!(%err, "a service task panicked");
            }
        }
        match self.failure.reason() {
            Some(reason) => Err(reason.to_string()),
            None => Ok(()),
        }
    }
}

/// Serves `router` on `listener` with the default [`Limits`] until `shutdown` is cancelled
/// (by the returned handle, or by the service itself). The service's background tasks watch
/// the same token.
pub fn spawn(
    listener: TcpListener,
    router: Router,
    name: &'static str,
    shutdown: CancellationToken,
) -> std::io::Result<ServerHandle> {
    spawn_with(listener, router, name, shutdown, Limits::default())
}

/// [`spawn`] with the given bounds on connections.
pub fn spawn_with(
    listener: TcpListener,
    router: Router,
    name: &'static str,
    shutdown: CancellationToken,
    limits: Limits,
) -> std::io::Result<ServerHandle> {
    let addr = listener.local_addr()?;
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        tracing::info!(%addr, ?limits, "{name} listening");
        connections::serve(listener, router, limits, stop).await;
    });
    Ok(ServerHandle {
        addr,
        failure: Failure {
            reason: Arc::default(),
            shutdown: shutdown.clone(),
        },
        shutdown,
        tasks: vec![task],
    })
}

/// Adds the parts every service shares to a service's own routes: `/health` (answered by
/// `health`: [`process_up`], or the service's own check), `/metrics`, and the layers below.
/// Call it last, after every route is in place (the wrong-method handler applies to the routes
/// it finds).
pub fn finish(router: Router, mut registry: Registry, health: MethodRouter) -> Router {
    let http = HttpMetrics::register(&mut registry);
    let registry = Arc::new(registry);
    // One stack, applied once: each `Router::layer` call boxes every route again, and every
    // box is cloned per request. Outermost first.
    let stack = ServiceBuilder::new()
        .layer(middleware::map_request(drop_bad_request_id))
        .layer(SetRequestIdLayer::new(
            HeaderName::from_static(REQUEST_ID_HEADER),
            MakeRequestIds::new(),
        ))
        .layer(middleware::from_fn(request_scope))
        .layer(PropagateRequestIdLayer::new(HeaderName::from_static(
            REQUEST_ID_HEADER,
        )))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(middleware::from_fn_with_state(http, track_http));
    router
        .route(routes::HEALTH, health)
        .route(
            routes::METRICS,
            get(move || render_metrics(registry.clone())),
        )
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(stack)
}

/// `GET /health` for a service that can do its work whenever it is up and serving HTTP.
pub fn process_up() -> MethodRouter {
    get(|| async { crate::Data::new("ok") })
}

/// Runs the request inside a `tracing` span that carries its request id (so every line logged
/// while serving it has the id) and makes the id the task's [`request_id::current_request_id`] (so calls
/// to other services forward it).
///
/// One span and nothing else. tower-http's `TraceLayer`, used before, also wraps the response
/// body and runs its hooks around every poll: it cost the front-end's cached product read 11 %
/// of its throughput (one thread is the bound there; `wrk`, with and without the layer). This
/// span costs about 7 %, mostly the subscriber formatting its fields; `track_http` logs the
/// status and latency at debug level, inside the span.
async fn request_scope(req: Request, next: Next) -> Response {
    let id = req
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_default()
        .to_string();
    let span = tracing::info_span!(
        "http",
        method = req.method().as_str(),
        path = req.uri().path(),
        request_id = id.as_str(),
    );
    request_id::scope(id, next.run(req)).instrument(span).await
}

async fn unknown_route(req: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.uri().path()
    ))
}

async fn wrong_method(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("the server hit a bug while handling this request").into_response()
}

async fn render_metrics(registry: Arc<Registry>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            text,
        )
            .into_response(),
        Err(err) => ApiError::internal(format!("cannot encode metrics: {err}")).into_response(),
    }
}

/// Requires `X-Cluster-Token` to match the configured token (in constant time), when one is
/// configured: a service runs without one only with `--insecure` ([`crate::cli::ClusterAuth`]).
/// Layer it on internal routes only.
pub async fn require_cluster_token(
    State(token): State<Option<ClusterToken>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(expected) = &token {
        let given = req
            .headers()
            .get(CLUSTER_TOKEN_HEADER)
            .map(HeaderValue::as_bytes);
        if !given.is_some_and(|given| expected.matches(given)) {
            return ApiError::unauthorized(
                "missing or wrong X-Cluster-Token on an internal endpoint",
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// A JSON body extractor whose rejections are enveloped: malformed JSON and bodies of the wrong
/// shape are 400, a missing content type 415, an oversized body 413.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = match rejection.status() {
        // axum says 422 for well-formed JSON of the wrong shape; to a client both are "bad body".
        StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
        status => status,
    };
    ApiError::new(status, rejection.body_text())
}

/// A path-parameter extractor whose rejections are enveloped (400).
pub struct PathParam<T>(pub T);

impl<S, T> FromRequestParts<S> for PathParam<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(path_rejection(rejection)),
        }
    }
}

fn path_rejection(rejection: PathRejection) -> ApiError {
    ApiError::bad_request(rejection.body_text())
}

/// Labels of one HTTP metric series. All `&'static str`: building them on the hot path
/// allocates nothing.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: &'static str,
    status: u16,
}

type LatencyFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// Per-route request latencies; the histogram's `_count` is the request count.
#[derive(Clone)]
struct HttpMetrics {
    latency: LatencyFamily,
    /// Matched route templates, interned. Their number is bounded by the router's routes.
    routes: Arc<parking_lot::RwLock<HashMap<String, &'static str>>>,
}

impl HttpMetrics {
    fn register(registry: &mut Registry) -> Self {
        let latency: LatencyFamily = Family::new_with_constructor(|| {
            // 50 µs .. ~1.6 s
            Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to produce a response, by method, route and status",
            latency.clone(),
        );
        Self {
            latency,
            routes: Arc::default(),
        }
    }

    fn route(&self, matched: Option<&MatchedPath>) -> &'static str {
        let Some(path) = matched else {
            return "unmatched";
        };
        if let Some(route) = self.routes.read().get(path.as_str()) {
            return route;
        }
        let mut routes = self.routes.write();
        let route: &&'static str = routes
            .entry(path.as_str().to_string())
            .or_insert_with(|| Box::leak(path.as_str().to_string().into_boxed_str()));
        route
    }
}

fn method_label(method: &axum::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

async fn track_http(State(metrics): State<HttpMetrics>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = metrics.route(req.extensions().get::<MatchedPath>());
    let response = next.run(req).await;
    let labels = RequestLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    let elapsed = started.elapsed();
    metrics
        .latency
        .get_or_create(&labels)
        .observe(elapsed.as_secs_f64());
    // Inside the request's span (this layer is the innermost), so the line has its id.
    tracing::debug!(
        status = labels.status,
        latency_us = elapsed.as_micros() as u64,
        "answered"
    );
    response
}

/// Removes an `x-request-id` that breaks the rules of a request id ([`valid_request_id`]: 1 to
/// 128 visible ASCII characters), so that the next layer gives the request a fresh one. A
/// client's id is logged, put in every span and forwarded to every service the request calls:
/// unchecked, it could be a megabyte, or forge log lines.
async fn drop_bad_request_id(mut req: Request) -> Request {
    let bad = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .is_some_and(|id| !id.to_str().is_ok_and(valid_request_id));
    if bad {
        req.headers_mut().remove(REQUEST_ID_HEADER);
    }
    req
}

/// Request ids: a random per-process prefix and a counter. Unique across the cluster for all
/// practical purposes, and far cheaper than a UUID from the OS's random source per request.
#[derive(Clone)]
struct MakeRequestIds {
    prefix: u32,
    next: Arc<AtomicU64>,
}

impl MakeRequestIds {
    fn new() -> Self {
        Self {
            prefix: uuid::Uuid::new_v4().as_u128() as u32,
            next: Arc::default(),
        }
    }
}

impl MakeRequestId for MakeRequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, AtomicOrdering::Relaxed);
        HeaderValue::from_str(&format!("{:08x}-{n:x}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

/// The runtime a service's `main` runs on, with `worker_threads` threads (`--worker-threads`).
///
/// One thread is a current-thread runtime. Five services and a load generator share the cores
/// of one machine here; on a multi-thread runtime every step of an order hops between worker
/// threads (a wake-up on another core each time), which measured slower than doing the same
/// work on one thread: an order at one connection 2.4 → 1.8 ms (p50), orders at 64 connections
/// 5 300 → 8 000 per second, cached reads faster too. So `cluster/up.sh` runs every service on
/// one thread; a service with a host of its own gets the host's cores by default. The rule that
/// comes with one thread holds for both: nothing may hold a thread for long. Disk waits run
/// elsewhere (the Raft log's sync thread, `spawn_blocking` for the catalog's commits, snapshots
/// and pruning) and long loops yield (the state machine's apply).
pub fn service_runtime(worker_threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if worker_threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads)
            .enable_all()
            .build()
    }
}

/// Why a service's `main` ends with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError<E: std::error::Error + 'static> {
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Start(E),
    #[error("stopped after a failure: {0}")]
    Stopped(String),
}

/// A service's whole `main`: tracing, [`service_runtime`] with `worker_threads`,
/// `serve(config)`, then [`run_until_signal`]. `main` returns the error, so the process exits
/// non-zero.
pub fn run_service<C, E, Fut>(
    worker_threads: usize,
    config: C,
    serve: impl FnOnce(C) -> Fut,
) -> Result<(), ServiceError<E>>
where
    E: std::error::Error + 'static,
    Fut: Future<Output = Result<ServerHandle, E>>,
{
    init_tracing();
    let runtime = service_runtime(worker_threads).map_err(ServiceError::Runtime)?;
    tracing::info!(worker_threads, "runtime started");
    runtime.block_on(async {
        let handle = serve(config).await.map_err(ServiceError::Start)?;
        run_until_signal(handle)
            .await
            .map_err(ServiceError::Stopped)
    })
}

/// What [`run_service`] does once the service is serving: waits for SIGTERM or Ctrl-C (or for
/// the service to stop by itself), then shuts it down gracefully. An `Err` is the failure that
/// stopped the service.
async fn run_until_signal(handle: ServerHandle) -> Result<(), String> {
    let stopped = handle.shutdown_token();
    tokio::select! {
        _ = shutdown_signal() => {}
        _ = stopped.cancelled() => {}
    }
    let result = handle.shutdown().await;
    tracing::info!("stopped");
    result
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{HeaderValue, Request};
    use prometheus_client::registry::Registry;
    use tower::ServiceExt;

    use super::{finish, process_up};
    use crate::defaults::REQUEST_ID_HEADER;
    use crate::request_id::valid_request_id;

    /// The `x-request-id` the stack answers a request carrying `given` with.
    async fn answered_id(given: Option<HeaderValue>) -> String {
        let router = finish(axum::Router::new(), Registry::default(), process_up());
        let mut request = Request::get("/health").body(Body::empty()).unwrap();
        if let Some(given) = given {
            request.headers_mut().insert(REQUEST_ID_HEADER, given);
        }
        let response = router.oneshot(request).await.unwrap();
        response
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|id| id.to_str().ok())
            .expect("every answer carries a request id")
            .to_string()
    }

    #[test]
    fn one_worker_thread_is_the_current_thread_runtime_and_more_are_a_pool() {
        use tokio::runtime::RuntimeFlavor;
        for (threads, flavor, workers) in [
            (1, RuntimeFlavor::CurrentThread, 1),
            (3, RuntimeFlavor::MultiThread, 3),
        ] {
            let runtime = super::service_runtime(threads).expect("a runtime");
            assert_eq!(runtime.handle().runtime_flavor(), flavor);
            assert_eq!(runtime.metrics().num_workers(), workers);
            // It runs spawned tasks and has timers (`enable_all`).
            let answer = runtime.block_on(async {
                tokio::spawn(async {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    7
                })
                .await
            });
            assert_eq!(answer.ok(), Some(7));
        }
    }

    #[tokio::test]
    async fn a_clients_request_id_is_kept_only_when_it_follows_the_rules() {
        let good = answered_id(Some(HeaderValue::from_static("order-7_retry.2"))).await;
        assert_eq!(good, "order-7_retry.2");
        let fresh = answered_id(None).await;
        assert!(valid_request_id(&fresh), "{fresh:?}");
        let too_long = "x".repeat(129);
        let bad = [
            HeaderValue::from_str(&too_long).unwrap(),
            HeaderValue::from_static("two words"),
            HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
            HeaderValue::from_static(""),
        ];
        for given in bad {
            let answered = answered_id(Some(given.clone())).await;
            assert_ne!(answered.as_bytes(), given.as_bytes());
            assert!(
                valid_request_id(&answered),
                "{answered:?} replaced {given:?}"
            );
        }
    }
}
