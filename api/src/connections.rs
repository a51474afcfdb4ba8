//! The accept loop every service serves HTTP with: hyper's HTTP/1 server, with the limits a
//! server that strangers can connect to needs.
//!
//! `axum::serve`, used before, runs hyper without a timer: a client that sent half a request
//! head, or nothing at all, held its connection (a task, a socket, a file descriptor) for ever,
//! and nothing bounded how many it could hold. Here every connection is bounded in time and
//! their number is capped ([`Limits`]):
//!
//! - **idle**: a connection waits at most `idle_timeout` for a request to start (its first, or
//!   the next on keep-alive) ([`Guarded`] keeps it). It stays above the 30 s a pooled
//!   `ServiceClient` connection may idle, so a server never closes a connection a client is
//!   about to reuse;
//! - **header**: once the first byte of a request has arrived, its head must be complete
//!   within `header_timeout`, the tighter bound hyper has no knob for ([`Guarded`] keeps it);
//! - **request**: from a complete head to the response — reading the body and the handler's
//!   work — at most `request_timeout`, else 408 and the connection is closed;
//! - **stalled writes**: a response that makes no progress for `request_timeout` (a client
//!   that does not read) closes the connection;
//! - **connections**: at most `max_connections` at once; past it the loop stops accepting, and
//!   new connections wait in the kernel's backlog until one closes;
//! - **header size**: a request head is at most `MAX_HEADER_BYTES`.
//!
//! Graceful shutdown works as before: stop accepting, let every connection finish the request
//! it is serving (idle ones close at once), then return.
//!
//! **What the limits cost.** None of them touches the timer wheel on a request's usual path:
//! the idle timer of a connection is set once and moved only when it fires (a keep-alive
//! connection that answers a request a millisecond would otherwise insert and cancel a timer
//! per request, under the timer driver's lock); the header and write timers start only when a
//! head arrives in pieces or a write blocks. hyper's own `header_read_timeout`, which did the
//! idle timeout before, did just that per request and cost cached product reads about a tenth
//! of their throughput (`cluster/bench.sh cache`).
//!
//! Length: 450 lines of code and 220 of tests against real sockets; the timeouts share one
//! stream wrapper ([`Guarded`]) and one phase, so they stay together.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::envelope::ApiError;

/// Largest request head (request line and headers) accepted; a longer one is answered 431.
/// Every head the store's clients send is well under 1 KiB.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The bounds of every connection (module doc). [`Limits::default`] is what the services run
/// with unless told otherwise (`api::cli::ServeArgs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From the first byte of a request to the end of its head.
    pub header_timeout: Duration,
    /// How long a connection may wait for a complete request head, from the moment it starts
    /// waiting (accepted, or the previous response sent).
    pub idle_timeout: Duration,
    /// From the end of a request's head to its response; also how long writing a response
    /// may make no progress.
    pub request_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            max_connections: 4096,
        }
    }
}

/// Accepts connections on `listener` and serves `router` on each, within `limits`, until
/// `shutdown` is cancelled; then waits for the open connections to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let slots = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let permits = Arc::new(Semaphore::new(slots));
    let mut warned_full: Option<Instant> = None;
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // At most one line a minute: under a flood of connections this would
                // otherwise be one line per freed slot.
                if warned_full.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                    warned_full = Some(Instant::now());
                    tracing::warn!(
                        max_connections = slots,
                        "connection limit reached: new connections wait until one closes"
                    );
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                }
            }
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) if is_connection_error(&err) => continue,
            Err(err) => {
                // Out of file descriptors, most likely: accepting again at once would spin.
                tracing::error!(%err, "cannot accept a connection; retrying in a second");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        // Orders are small request/response exchanges: Nagle's algorithm would only add
        // latency.
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            stream,
            peer,
            router.clone(),
            limits,
            shutdown.clone(),
            permit,
        ));
    }
    drop(listener);
    // Every connection holds a permit until it ends: all of them back means all closed.
    let _ = permits.acquire_many(slots as u32).await;
}

fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves one connection until it closes, or until it finishes its request after `shutdown`.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let phase = Arc::new(AtomicU8::new(IDLE));
    let io = TokioIo::new(Guarded::new(stream, phase.clone(), limits));
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        // The head is complete: from here the request timeout bounds it.
        phase.store(BUSY, Ordering::Relaxed);
        let phase = phase.clone();
        let answer = tokio::time::timeout(
            limits.request_timeout,
            router.clone().oneshot(request.map(Body::new)),
        );
        async move {
            let response = match answer.await {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(_) => request_timed_out(limits.request_timeout),
            };
            phase.store(IDLE, Ordering::Relaxed);
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // No hyper timer: the idle and header timeouts are `Guarded`'s.
    builder.max_header_size(MAX_HEADER_BYTES);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(err) = served {
                    tracing::debug!(%peer, %err, "connection closed");
                }
                break;
            }
            _ = shutdown.cancelled(), if !stopping => {
                // Finish the request in progress, if any, then close.
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// The answer to a request that took longer than the request timeout: its handler is
/// dropped, and the connection closed (its body may be half read).
fn request_timed_out(limit: Duration) -> Response {
    let mut response = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        format!(
            "the request was not read and answered within {} s",
            limit.as_secs_f64()
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Where a connection is in its request cycle, shared by [`Guarded`] (which sees bytes) and
/// the connection's service (which sees complete heads and finished answers).
const IDLE: u8 = 0;
/// Bytes of a request head arrived; the head is not complete yet.
const HEAD: u8 = 1;
/// The head is complete; the request is being served.
const BUSY: u8 = 2;

/// The TCP stream of one connection, with its deadlines: an idle connection must start a
/// request within the idle timeout, a request head that started must be complete within the
/// header timeout, and a write that makes no progress fails after the request timeout. Each
/// failure closes the connection.
///
/// A deadline is kept by polling its timer whenever the stream has nothing to offer (the
/// timer then wakes the connection's task, and the next read or write fails).
///
/// A head "starts" with the first bytes read while the connection is idle. Bytes of a body a
/// handler left unread, which hyper drains after the answer only if they are already there,
/// count as such a start too; the worst that does is close that connection after the header
/// timeout of idleness instead of the idle timeout.
struct Guarded {
    stream: TcpStream,
    phase: Arc<AtomicU8>,
    header_timeout: Duration,
    write_timeout: Duration,
    idle_timeout: Duration,
    /// When the connection last became idle (opened, or a request answered): set at the first
    /// read of an idle period that had to wait, `None` until then.
    idle_since: Option<Instant>,
    /// Fires at or before `idle_since + idle_timeout`; set once, and moved to the current
    /// idle period's end only when it fires early (see the module's doc).
    idle_deadline: Option<Pin<Box<Sleep>>>,
    /// When the first byte of the request head being read arrived.
    head_since: Instant,
    /// Whether `head_deadline` runs for that head. Set only once a read of it had to wait:
    /// a head that arrives in one read (nearly all) costs no timer.
    head_timed: bool,
    head_deadline: Option<Pin<Box<Sleep>>>,
    write_deadline: Option<Pin<Box<Sleep>>>,
    /// Whether `write_deadline` is running (a write is blocked).
    write_blocked: bool,
}

impl Guarded {
    fn new(stream: TcpStream, phase: Arc<AtomicU8>, limits: Limits) -> Self {
        Self {
            stream,
            phase,
            header_timeout: limits.header_timeout,
            write_timeout: limits.request_timeout,
            idle_timeout: limits.idle_timeout,
            idle_since: None,
            idle_deadline: None,
            head_since: Instant::now(),
            head_timed: false,
            head_deadline: None,
            write_deadline: None,
            write_blocked: false,
        }
    }

    /// Starts (or restarts) a timer to fire at `deadline`.
    fn arm(timer: &mut Option<Pin<Box<Sleep>>>, deadline: Instant) {
        match timer {
            Some(sleep) => sleep.as_mut().reset(deadline),
            None => *timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
    }

    fn expired(timer: &mut Option<Pin<Box<Sleep>>>, cx: &mut Context<'_>) -> bool {
        timer
            .as_mut()
            .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready())
    }

    /// A read of an idle connection had to wait: `Pending`, or an error once it has been idle
    /// for the idle timeout. The timer is armed once per connection and reset only when it
    /// fires before the current idle period's end, so a busy keep-alive connection costs no
    /// timer operation per request.
    fn poll_idle<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let end = *self.idle_since.get_or_insert_with(Instant::now) + self.idle_timeout;
        if self.idle_deadline.is_none() {
            Self::arm(&mut self.idle_deadline, end);
        }
        while Self::expired(&mut self.idle_deadline, cx) {
            if Instant::now() >= end {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the connection was idle for the idle timeout",
                )));
            }
            // Set in an earlier idle period: move it to this one's end and poll it again.
            Self::arm(&mut self.idle_deadline, end);
        }
        Poll::Pending
    }

    /// A write's outcome, with the stall deadline kept.
    fn guard_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Pending => {
                if !self.write_blocked {
                    self.write_blocked = true;
                    Self::arm(
                        &mut self.write_deadline,
                        Instant::now() + self.write_timeout,
                    );
                }
                if Self::expired(&mut self.write_deadline, cx) {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client stopped reading the response",
                    )));
                }
                Poll::Pending
            }
            ready => {
                self.write_blocked = false;
                ready
            }
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before
                    && this
                        .phase
                        .compare_exchange(IDLE, HEAD, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    this.head_since = Instant::now();
                    this.head_timed = false;
                    this.idle_since = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                match this.phase.load(Ordering::Relaxed) {
                    IDLE => return this.poll_idle(cx),
                    HEAD => {}
                    _ => return Poll::Pending,
                }
                if !this.head_timed {
                    this.head_timed = true;
                    Self::arm(
                        &mut this.head_deadline,
                        this.head_since + this.header_timeout,
                    );
                }
                if Self::expired(&mut this.head_deadline, cx) {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the request head was not complete in time",
                    )));
                }
                Poll::Pending
            }
            failed => failed,
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, data);
        this.guard_write(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.guard_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    //! Real sockets against [`serve`] with short limits. Every wait is a condition polled
    //! until a generous deadline; the only "it did not happen" checks are bounded by the
    //! condition that did happen (an idle connection outliving a half-sent head).

    use std::time::Duration;

    use axum::Router;
    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinHandle;
    use tokio_util::sync::CancellationToken;

    use super::{Limits, serve};

    const DEADLINE: Duration = Duration::from_secs(20);

    struct Running {
        addr: std::net::SocketAddr,
        shutdown: CancellationToken,
        task: JoinHandle<()>,
    }

    async fn start(limits: Limits) -> Running {
        let router = Router::new()
            .route("/", get(|| async { "ok" }))
            .route("/echo", post(|body: String| async move { body }))
            .route("/big", get(|| async { vec![b'x'; 16 << 20] }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(listener, router, limits, shutdown.clone()));
        Running {
            addr,
            shutdown,
            task,
        }
    }

    fn limits() -> Limits {
        Limits {
            header_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_millis(300),
            max_connections: 64,
        }
    }

    /// Reads one response: its status and body (by `content-length`).
    async fn read_response(stream: &mut TcpStream) -> Option<(u16, Vec<u8>)> {
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
        let status = head.get(9..12)?.parse().ok()?;
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0);
        let mut body = buf[head_end..].to_vec();
        while body.len() < length {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        Some((status, body))
    }

    async fn get_root(stream: &mut TcpStream) -> Option<(u16, Vec<u8>)> {
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .ok()?;
        read_response(stream).await
    }

    /// Reads until the server closes the connection (EOF or reset); false at the deadline.
    async fn closed_by_server(stream: &mut TcpStream) -> bool {
        tokio::time::timeout(DEADLINE, async {
            let mut chunk = [0u8; 4096];
            loop {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }

    #[tokio::test]
    async fn a_half_sent_head_is_cut_off_but_an_idle_keep_alive_connection_is_not() {
        let server = start(limits()).await;
        let mut idle = TcpStream::connect(server.addr).await.unwrap();
        assert_eq!(get_root(&mut idle).await.map(|r| r.0), Some(200));
        let mut slow = TcpStream::connect(server.addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nhost: te").await.unwrap();
        assert!(
            closed_by_server(&mut slow).await,
            "a head that never completes must be cut off after the header timeout"
        );
        // `idle` has now waited longer than the header timeout: only the (long) idle timeout
        // applies to it, so it still serves.
        assert_eq!(
            get_root(&mut idle).await.map(|r| r.0),
            Some(200),
            "an idle keep-alive connection was closed by the header timeout"
        );
        server.shutdown.cancel();
        server.task.await.unwrap();
    }

    #[tokio::test]
    async fn idle_connections_are_closed_after_the_idle_timeout() {
        let server = start(Limits {
            idle_timeout: Duration::from_millis(300),
            ..limits()
        })
        .await;
        // Never sent a byte.
        let mut silent = TcpStream::connect(server.addr).await.unwrap();
        // Sent one request, then nothing (keep-alive).
        let mut kept = TcpStream::connect(server.addr).await.unwrap();
        assert_eq!(get_root(&mut kept).await.map(|r| r.0), Some(200));
        assert!(closed_by_server(&mut silent).await);
        assert!(closed_by_server(&mut kept).await);
        server.shutdown.cancel();
        server.task.await.unwrap();
    }

    #[tokio::test]
    async fn a_body_that_never_completes_gets_408_and_the_connection_closes() {
        let server = start(limits()).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-type: text/plain\r\ncontent-length: 100\r\n\r\nonly ten b")
            .await
            .unwrap();
        let (status, body) = tokio::time::timeout(DEADLINE, read_response(&mut stream))
            .await
            .expect("an answer before the deadline: the request timeout must end the request")
            .expect("an answer");
        assert_eq!(status, 408, "{}", String::from_utf8_lossy(&body));
        let body: serde_json::Value = serde_json::from_slice(&body).expect("the envelope");
        assert_eq!(body["error"]["code"], 408);
        assert_eq!(body["error"]["reason"], "request_timeout");
        assert!(closed_by_server(&mut stream).await);
        server.shutdown.cancel();
        server.task.await.unwrap();
    }

    #[tokio::test]
    async fn connections_past_the_cap_wait_for_a_free_slot() {
        let server = start(Limits {
            max_connections: 2,
            ..limits()
        })
        .await;
        let mut first = TcpStream::connect(server.addr).await.unwrap();
        let mut second = TcpStream::connect(server.addr).await.unwrap();
        assert_eq!(get_root(&mut first).await.map(|r| r.0), Some(200));
        assert_eq!(get_root(&mut second).await.map(|r| r.0), Some(200));
        // The kernel completes the handshake (backlog), but the loop does not accept it.
        let mut third = TcpStream::connect(server.addr).await.unwrap();
        third
            .write_all(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .unwrap();
        let early = tokio::time::timeout(Duration::from_millis(500), read_response(&mut third));
        assert!(
            early.await.is_err(),
            "a third connection was served while two were open"
        );
        drop(first);
        let answer = tokio::time::timeout(DEADLINE, read_response(&mut third)).await;
        assert_eq!(
            answer.ok().flatten().map(|r| r.0),
            Some(200),
            "the waiting connection was not served once a slot was free"
        );
        server.shutdown.cancel();
        drop((second, third));
        server.task.await.unwrap();
    }

    #[tokio::test]
    async fn shutdown_finishes_even_when_a_client_stops_reading() {
        let server = start(limits()).await;
        // Idle keep-alive: closed by the shutdown.
        let mut idle = TcpStream::connect(server.addr).await.unwrap();
        assert_eq!(get_root(&mut idle).await.map(|r| r.0), Some(200));
        // A 16 MiB answer to a client that never reads it: its write stalls for good.
        let mut stuck = TcpStream::connect(server.addr).await.unwrap();
        stuck
            .write_all(b"GET /big HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .unwrap();
        server.shutdown.cancel();
        let stopped = tokio::time::timeout(DEADLINE, server.task).await;
        assert!(
            stopped.is_ok(),
            "graceful shutdown waited for ever on a response nobody reads"
        );
        assert!(closed_by_server(&mut idle).await);
        drop(stuck);
    }
}
