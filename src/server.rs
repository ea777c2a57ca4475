//! The listener loop: accepts TCP connections and serves each with hyper (HTTP/1.1, and
//! HTTP/2 over cleartext with prior knowledge), under limits that keep a hostile caller from
//! exhausting the process:
//!
//! * at most `server.max_connections` connections are served at once; a few more are answered
//!   503 with `Retry-After`, and any beyond those are closed unanswered;
//! * a request head larger than `server.max_header_bytes`, or with more than
//!   `server.max_headers` fields, is answered 431 by hyper and the connection closed;
//! * a connection with no request in flight for `server.header_read_timeout_seconds` (since
//!   it opened, or since its previous answer) is closed: slow-loris senders and idle
//!   keep-alive connections alike. One watchdog per connection does this, not a timer per
//!   request head;
//! * an HTTP/2 connection may have at most `server.http2_max_concurrent_streams` requests open.
//!
//! A slow body is the router's business: the whole-request timeout (`server.request_timeout`)
//! runs while the handler reads it. On shutdown, the listener closes, every connection is asked
//! to finish (HTTP/1.1 closes after the answer in flight, HTTP/2 sends GOAWAY) and [`serve`]
//! completes when the last one has.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use pin_project_lite::pin_project;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::ServerSettings;
use crate::http::error::{ApiError, ErrorCode};

/// How many connections over `max_connections` are answered 503 at once; any beyond these are
/// closed without an answer, so a flood costs a file descriptor for microseconds only.
const BUSY_ANSWERS: usize = 64;

/// How long a connection over the limit has to send its request and read the 503.
const BUSY_ANSWER_TIME: Duration = Duration::from_secs(2);

/// What a caller is told to wait before trying again when the server is full, in seconds.
const BUSY_RETRY_AFTER_SECONDS: u64 = 1;

/// hyper's own default for the number of header fields; setting any value moves the parser's
/// header array from the stack to the heap, so it is set only when different.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// Least time between two log lines about refused connections or accept errors.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The limits of one listener, from `[server]`.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub header_read_timeout: Duration,
    pub http2_max_concurrent_streams: u32,
}

impl Limits {
    pub fn from_settings(server: &ServerSettings) -> Self {
        Self {
            max_connections: server.max_connections,
            max_header_bytes: server.max_header_bytes,
            max_headers: server.max_headers,
            header_read_timeout: server.header_read_timeout,
            http2_max_concurrent_streams: server.http2_max_concurrent_streams,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then closes the listener, asks
/// every open connection to finish, and returns once all have. `label` names the listener in
/// logs and metrics (`main`, `metrics`). Dropping the returned future aborts every connection.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    label: &'static str,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = pin!(shutdown);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut loop_ = AcceptLoop {
        builder: Arc::new(connection_builder(&limits)),
        busy_builder: Arc::new(busy_builder(&limits)),
        router,
        busy_router: busy_router(),
        idle_after: limits.header_read_timeout,
        slots: Arc::new(Semaphore::new(limits.max_connections)),
        busy_slots: Arc::new(Semaphore::new(BUSY_ANSWERS)),
        stop: stop_rx,
        tasks: JoinSet::new(),
        label,
        refused_since_log: 0,
        last_log: None,
    };
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = loop_.tasks.join_next(), if !loop_.tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => loop_.admit(stream),
                Err(error) if is_per_connection(&error) => {}
                Err(error) => {
                    // Out of file descriptors, most likely: back off briefly rather than spin;
                    // connections that finish meanwhile free some.
                    loop_.log_throttled(|| {
                        tracing::error!(listener = label, %error, "cannot accept connections")
                    });
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            },
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while loop_.tasks.join_next().await.is_some() {}
}

/// Logs once at start when the open-file limit leaves too little room for `max_connections`:
/// beyond it, `accept` fails and nobody gets even a 503.
pub fn warn_if_few_open_files(limits: &Limits) {
    // Connections, the answers over the limit, and a reserve for the store, Redis, Zoom and logs.
    let needed = (limits.max_connections + BUSY_ANSWERS + 128) as u64;
    if let Some(soft) = open_file_limit()
        && soft < needed
    {
        tracing::warn!(
            open_file_limit = soft,
            max_connections = limits.max_connections,
            "server.max_connections needs about {needed} open files but `ulimit -n` allows \
             {soft}: raise the limit or lower server.max_connections"
        );
    }
}

/// The soft limit on open files (`ulimit -n`), where the platform tells it.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

struct AcceptLoop {
    builder: Arc<Builder<TokioExecutor>>,
    busy_builder: Arc<Builder<TokioExecutor>>,
    router: Router,
    busy_router: Router,
    idle_after: Duration,
    /// One permit per connection served.
    slots: Arc<Semaphore>,
    /// One permit per connection being answered 503.
    busy_slots: Arc<Semaphore>,
    /// Becomes `true` when connections are to finish.
    stop: watch::Receiver<bool>,
    /// Every connection's task: dropped with the loop, which aborts them.
    tasks: JoinSet<()>,
    label: &'static str,
    refused_since_log: u64,
    last_log: Option<Instant>,
}

impl AcceptLoop {
    fn admit(&mut self, stream: TcpStream) {
        // Answers are small and written whole; Nagle's algorithm would only delay them.
        let _ = stream.set_nodelay(true);
        if let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() {
            let connection = serve_connection(
                stream,
                Arc::clone(&self.builder),
                self.router.clone(),
                self.idle_after,
                self.stop.clone(),
                Open::count(self.label, slot),
            );
            self.tasks.spawn(connection);
            return;
        }
        self.refused_since_log += 1;
        let answer = match Arc::clone(&self.busy_slots).try_acquire_owned() {
            Ok(slot) => {
                self.tasks.spawn(answer_busy(
                    stream,
                    Arc::clone(&self.busy_builder),
                    self.busy_router.clone(),
                    slot,
                ));
                "503"
            }
            Err(_) => {
                drop(stream);
                "closed"
            }
        };
        metrics::counter!("ztv_connections_refused_total", "listener" => self.label, "answer" => answer)
            .increment(1);
        let (label, refused) = (self.label, self.refused_since_log);
        if self.log_throttled(|| {
            tracing::warn!(
                listener = label,
                refused,
                "connection limit reached (server.max_connections); refusing new connections"
            )
        }) {
            self.refused_since_log = 0;
        }
    }

    /// Runs `log` unless it ran less than [`LOG_EVERY`] ago; tells whether it ran.
    fn log_throttled(&mut self, log: impl FnOnce()) -> bool {
        let now = Instant::now();
        if self
            .last_log
            .is_some_and(|last| now.duration_since(last) < LOG_EVERY)
        {
            return false;
        }
        self.last_log = Some(now);
        log();
        true
    }
}

/// An accepted connection's slot, and the `ztv_connections_open` gauge while it is held.
struct Open {
    label: &'static str,
    _slot: OwnedSemaphorePermit,
}

impl Open {
    fn count(label: &'static str, slot: OwnedSemaphorePermit) -> Self {
        metrics::gauge!("ztv_connections_open", "listener" => label).increment(1.0);
        Self { label, _slot: slot }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!("ztv_connections_open", "listener" => self.label).decrement(1.0);
    }
}

/// Errors of one connection that died before it was accepted; the next `accept` is fine.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

fn connection_builder(limits: &Limits) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    let mut http1 = builder.http1();
    http1
        .timer(TokioTimer::new())
        // The connection's watchdog (`idle_for`) closes a connection whose head is late; a
        // timer armed and cleared per request head would only repeat it.
        .header_read_timeout(None)
        // hyper answers 431 when a head does not fit its read buffer.
        .max_buf_size(limits.max_header_bytes);
    if limits.max_headers != HYPER_DEFAULT_MAX_HEADERS {
        http1.max_headers(limits.max_headers);
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// For the answers over the limit: one request, then the connection closes.
fn busy_builder(limits: &Limits) -> Builder<TokioExecutor> {
    let mut builder = connection_builder(limits);
    builder
        .http1()
        .keep_alive(false)
        .header_read_timeout(BUSY_ANSWER_TIME);
    builder.http2().max_concurrent_streams(1);
    builder
}

/// Every request gets the same 503, with a request id and in the usual error shape.
fn busy_router() -> Router {
    Router::new()
        .fallback(|| async {
            let mut error = ApiError::new(
                ErrorCode::UpstreamUnavailable,
                "ztv is at its connection limit (server.max_connections); retry shortly",
            );
            error.retry_after = Some(BUSY_RETRY_AFTER_SECONDS);
            error.into_response()
        })
        .layer(crate::telemetry::request_id::AssignLayer)
}

async fn answer_busy(
    stream: TcpStream,
    builder: Arc<Builder<TokioExecutor>>,
    router: Router,
    _slot: OwnedSemaphorePermit,
) {
    let connection =
        builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    let _ = tokio::time::timeout(BUSY_ANSWER_TIME, connection).await;
}

async fn serve_connection(
    stream: TcpStream,
    builder: Arc<Builder<TokioExecutor>>,
    router: Router,
    idle_after: Duration,
    mut stop: watch::Receiver<bool>,
    _open: Open,
) {
    let activity = Arc::new(Activity::new());
    let service = Tracked {
        inner: TowerToHyperService::new(router),
        activity: Arc::clone(&activity),
        peer: stream.peer_addr().ok(),
    };
    let mut connection = pin!(builder.serve_connection(TokioIo::new(stream), service));
    let idle = tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
            return;
        }
        _ = stop.wait_for(|stop| *stop) => false,
        () = idle_for(&activity, idle_after) => true,
    };
    if idle && !activity.ever_busy() {
        // Not one request head in all that time (a slow-loris sender, or silence): nothing
        // to finish, and HTTP/1.1 would keep reading a head begun before a graceful shutdown.
        return;
    }
    connection.as_mut().graceful_shutdown();
    if idle {
        // Nothing is in flight: an idle HTTP/1.1 connection closes at once (a head begun
        // after an answer included), HTTP/2 says GOAWAY; quick unless the peer stopped reading.
        let _ = tokio::time::timeout(idle_after, connection).await;
    } else {
        // In-flight requests finish; `Application::run` bounds this by the shutdown grace.
        let _ = connection.await;
    }
}

/// Completes once no request has been in flight on the connection for `after`: an idle
/// keep-alive or HTTP/2 connection, or one whose request head is late. It looks when the
/// connection could first have become idle, so requests themselves wake nothing and start no
/// timer.
async fn idle_for(activity: &Activity, after: Duration) {
    loop {
        let wait = match activity.idle_since() {
            Some(quiet) if quiet >= after => return,
            Some(quiet) => after - quiet,
            None => after,
        };
        tokio::time::sleep(wait).await;
    }
}

/// The requests in flight on one connection, and when the last of them ended.
struct Activity {
    in_flight: AtomicUsize,
    /// Whether a request has ever been in flight.
    ever_busy: AtomicBool,
    /// Milliseconds after `opened` (the connection's opening until a request ends).
    last_done_ms: AtomicU64,
    opened: Instant,
}

impl Activity {
    fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            ever_busy: AtomicBool::new(false),
            last_done_ms: AtomicU64::new(0),
            opened: Instant::now(),
        }
    }

    fn ever_busy(&self) -> bool {
        self.ever_busy.load(Ordering::Acquire)
    }

    /// How long nothing has been in flight; `None` while something is.
    fn idle_since(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let done = Duration::from_millis(self.last_done_ms.load(Ordering::Acquire));
        Some(self.opened.elapsed().saturating_sub(done))
    }
}

/// The router as a hyper service that counts the requests in flight on its connection.
struct Tracked {
    inner: TowerToHyperService<Router>,
    activity: Arc<Activity>,
    /// The client's address, for what is bounded per address: the audit of `/v1` requests
    /// (see `http::middleware`), the only reader, so only those requests carry it.
    peer: Option<SocketAddr>,
}

impl Service<Request<Incoming>> for Tracked {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer<<TowerToHyperService<Router> as Service<Request<Incoming>>>::Future>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        if let Some(peer) = self.peer
            && crate::http::middleware::is_audited(request.uri().path())
        {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        let busy = InFlight::start(Arc::clone(&self.activity));
        Answer {
            answer: self.inner.call(request),
            _busy: busy,
        }
    }
}

pin_project! {
    /// A request's answer, counted in flight until it is ready or dropped.
    struct Answer<F> {
        #[pin]
        answer: F,
        _busy: InFlight,
    }
}

impl<F: Future> Future for Answer<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        self.project().answer.poll(cx)
    }
}

/// One request in flight; counted down when dropped (answered or abandoned).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.ever_busy.store(true, Ordering::Release);
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let done = activity.opened.elapsed().as_millis() as u64;
        activity.last_done_ms.fetch_max(done, Ordering::AcqRel);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_is_idle_only_once_nothing_is_in_flight() {
        let activity = Arc::new(Activity::new());
        let first = InFlight::start(Arc::clone(&activity));
        let watched = Arc::clone(&activity);
        let idle =
            tokio::spawn(async move { idle_for(&watched, Duration::from_millis(100)).await });

        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!idle.is_finished(), "a request is in flight");
        let second = InFlight::start(Arc::clone(&activity));
        drop(first);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!idle.is_finished(), "another request is in flight");
        drop(second);

        tokio::time::timeout(Duration::from_secs(10), idle)
            .await
            .expect("idle once both are answered")
            .unwrap();
    }

    #[test]
    fn the_open_file_limit_is_read_where_the_platform_tells_it() {
        if cfg!(target_os = "linux") {
            assert!(open_file_limit().is_some_and(|n| n > 0));
        }
    }
}
