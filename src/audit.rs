//! The audit log: one event per `/v1` request (issued, refused or failed), and per API-key
//! change made with the CLI. Never a token or a secret.
//!
//! Requests hand their event to a bounded queue and never wait on the database; a background
//! writer stores events in batches (by size, or every 200 ms) and, on a clean shutdown,
//! writes everything still queued before the process exits. If the queue is full, the
//! request still succeeds and the event is counted as dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::app::AppState;
use crate::store::{AuditEvent, Store};
use crate::telemetry::request_id::RequestId;
use crate::zoom_user::ZoomUser;

/// Events queued at most before new ones are dropped.
const QUEUE: usize = 10_000;
/// Events written in one transaction at most.
const BATCH: usize = 2_000;
/// Longest an event waits in the queue before it is written.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// How often old events are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Refused requests without a caller written to the log at most, per second, per client
/// address and in all: the rest are only counted (`ztv_unauthenticated_refused_total`).
pub const UNAUTHENTICATED_PER_ADDRESS_PER_SECOND: u32 = 1;
pub const UNAUTHENTICATED_PER_SECOND: u32 = 20;
/// Refusals (429) of one caller over its limits written to the log at most, per second.
pub const LIMITED_PER_CALLER_PER_SECOND: u32 = 1;
/// Client addresses (or callers) remembered by the sampler before idle ones are forgotten.
const SAMPLER_ADDRESSES: usize = 10_000;

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub struct AuditLog {
    /// Closed by the writer when told to stop; an event sent after that is dropped.
    queue: mpsc::Sender<AuditEvent>,
    /// Wakes the writer before its timer when a full batch is waiting.
    batch_waiting: Arc<Notify>,
    /// Tells the writer to close the queue, write what it holds and end.
    stop: Arc<Notify>,
    dropped: AtomicU64,
    writer: Mutex<Option<JoinHandle<()>>>,
    sampler: Sampler,
}

/// Which refused requests without a caller are written: a few a second per address, and a
/// few a second in all, so nobody without a credential can grow the table.
struct Sampler {
    by_address: DefaultKeyedRateLimiter<Option<IpAddr>>,
    overall: DefaultDirectRateLimiter,
    /// Refusals of callers over their rate limit or upstream budget, by caller.
    limited: DefaultKeyedRateLimiter<Arc<str>>,
}

impl Sampler {
    fn new() -> Self {
        let quota = |n: u32| Quota::per_second(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Self {
            by_address: DefaultKeyedRateLimiter::keyed(quota(
                UNAUTHENTICATED_PER_ADDRESS_PER_SECOND,
            )),
            overall: DefaultDirectRateLimiter::direct(quota(UNAUTHENTICATED_PER_SECOND)),
            limited: DefaultKeyedRateLimiter::keyed(quota(LIMITED_PER_CALLER_PER_SECOND)),
        }
    }

    fn admit_limited(&self, caller: &Arc<str>) -> bool {
        if self.limited.len() >= SAMPLER_ADDRESSES {
            self.limited.retain_recent();
        }
        self.limited.check_key(caller).is_ok()
    }

    fn admit(&self, peer: Option<IpAddr>) -> bool {
        if self.by_address.len() >= SAMPLER_ADDRESSES {
            self.by_address.retain_recent();
        }
        self.by_address.check_key(&peer).is_ok() && self.overall.check().is_ok()
    }
}

impl AuditLog {
    /// Starts the writer; events older than `retention` are pruned every hour.
    pub fn start(store: Arc<dyn Store>, retention: Duration) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let batch_waiting = Arc::new(Notify::new());
        let stop = Arc::new(Notify::new());
        let writer = tokio::spawn(write_batches(
            store,
            rx,
            Arc::clone(&batch_waiting),
            Arc::clone(&stop),
            retention,
        ));
        Arc::new(Self {
            queue: tx,
            batch_waiting,
            stop,
            dropped: AtomicU64::new(0),
            writer: Mutex::new(Some(writer)),
            sampler: Sampler::new(),
        })
    }

    /// Queues an event without waiting; counts it as dropped when the queue is full. The
    /// writer is woken only once a batch's worth is waiting (otherwise its timer does it), so
    /// a request costs no task wake-up.
    pub fn record(&self, event: AuditEvent) {
        if self.queue.try_send(event).is_err() {
            self.count_dropped();
        }
        if self.queue.max_capacity() - self.queue.capacity() >= BATCH {
            self.batch_waiting.notify_one();
        }
    }

    fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("ztv_audit_dropped_total").increment(1);
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Stops taking events and waits until every queued one is written.
    pub async fn flush_and_stop(&self) {
        // A permit is kept if the writer is busy writing: it sees it at its next wait.
        self.stop.notify_one();
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
    }
}

async fn write_batches(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<AuditEvent>,
    batch_waiting: Arc<Notify>,
    stop: Arc<Notify>,
    retention: Duration,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut ticker = tokio::time::interval(FLUSH_EVERY);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = batch_waiting.notified() => {}
            // Takes no more events; those queued are still received, then `Disconnected`.
            _ = stop.notified() => rx.close(),
            _ = prune.tick() => {
                housekeeping(&*store, retention).await;
                continue;
            }
        }
        // Everything queued now, in batches of at most BATCH.
        metrics::gauge!("ztv_audit_queue_depth").set(rx.len() as f64);
        loop {
            match rx.try_recv() {
                Ok(event) => {
                    batch.push(event);
                    if batch.len() >= BATCH {
                        write(&*store, &mut batch).await;
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => {
                    write(&*store, &mut batch).await;
                    break;
                }
                // Closed (or every sender gone) and empty: stop.
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    write(&*store, &mut batch).await;
                    return;
                }
            }
        }
    }
}

/// Deletes audit events older than `retention` and pending authorisations that expired.
async fn housekeeping(store: &dyn Store, retention: Duration) {
    let before = now_ms() - retention.as_millis() as i64;
    if let Err(error) = store.prune_audit(before).await {
        tracing::warn!(%error, "cannot prune old audit events");
    }
    if let Err(error) = store.prune_oauth_states(crate::clock::now()).await {
        tracing::warn!(%error, "cannot delete expired OAuth states");
    }
}

/// Writes a batch, retrying a few times so a short database hiccup loses nothing.
async fn write(store: &dyn Store, batch: &mut Vec<AuditEvent>) {
    if batch.is_empty() {
        return;
    }
    for attempt in 0..5u64 {
        match store.append_audit(batch).await {
            Ok(()) => {
                batch.clear();
                return;
            }
            Err(error) if attempt == 4 => {
                tracing::error!(%error, events = batch.len(), "cannot write audit events; they are lost");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await,
        }
    }
    batch.clear();
}

/// What a request learns about itself as it goes: filled in by the caller extractor and the
/// handlers, read by [`record_request`] when the response is ready.
#[derive(Default)]
struct Facts {
    caller: Option<Arc<str>>,
    account: Option<String>,
    target_user: Option<String>,
    target: Option<String>,
}

tokio::task_local! {
    static FACTS: Arc<Mutex<Facts>>;
}

fn note(update: impl FnOnce(&mut Facts)) {
    let _ = FACTS.try_with(|facts| update(&mut facts.lock().unwrap_or_else(|p| p.into_inner())));
}

pub fn note_caller(name: impl Into<Arc<str>>) {
    note(|f| f.caller = Some(name.into()));
}

pub fn note_account(name: &str) {
    note(|f| f.account = Some(name.to_string()));
}

/// The Zoom user and/or the meeting number or session name the request is about.
pub fn note_target(user: Option<&ZoomUser>, target: Option<&str>) {
    note(|f| {
        if let Some(user) = user {
            f.target_user = Some(user.key().to_string());
        }
        if let Some(target) = target {
            f.target = Some(target.to_string());
        }
    });
}

/// An event about a user's grant (`created`, `refreshed`, `refused` by Zoom, `deleted`), on
/// top of the event of the request it happened in, whose id and caller it carries.
/// `user_key` is the user's folded identity ([`ZoomUser::key`]).
pub fn grant_event(action: &'static str, account: &str, user_key: &str) -> AuditEvent {
    let caller = FACTS
        .try_with(|facts| {
            facts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .caller
                .clone()
        })
        .ok()
        .flatten();
    AuditEvent {
        at_ms: now_ms(),
        request_id: crate::telemetry::request_id::current(),
        caller,
        route: "user grant".into(),
        account: Some(account.to_string()),
        target_user: Some(user_key.to_string()),
        target: None,
        outcome: action.into(),
        status: 0,
    }
}

/// The caller of a request, handed from the audit middleware to the request's log line.
#[derive(Clone)]
pub struct CallerName(pub Arc<str>);

/// Middleware: every `/v1` request becomes one audit event.
pub async fn record_request(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if !request.uri().path().starts_with("/v1/") {
        return next.run(request).await;
    }
    // Only bounded values: the method as the metrics name it (`OTHER` for any other), the
    // route's template, never the path or method as sent.
    let template = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let route = format!(
        "{} {template}",
        crate::telemetry::metrics::method_label(request.method())
    );
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let request_id = request.extensions().get::<RequestId>().map(|r| r.0.clone());
    let facts = Arc::new(Mutex::new(Facts::default()));
    let mut response = FACTS.scope(Arc::clone(&facts), next.run(request)).await;
    let facts = std::mem::take(&mut *facts.lock().unwrap_or_else(|p| p.into_inner()));
    let status = response.status();
    let outcome = if status.is_success() || status.is_redirection() {
        "issued"
    } else if status.is_client_error() {
        "refused"
    } else {
        "failed"
    };
    let written = match &facts.caller {
        None if status.is_client_error() => {
            crate::telemetry::metrics::count_unauthenticated_refused(&route);
            state.audit.sampler.admit(peer)
        }
        // A caller over its limit is refused without work; its refusals are sampled too, so
        // a key cannot write rows faster than its limit lets it work.
        Some(caller) if status == StatusCode::TOO_MANY_REQUESTS => {
            state.audit.sampler.admit_limited(caller)
        }
        _ => true,
    };
    if !written {
        return response;
    }
    if outcome == "issued" {
        crate::telemetry::metrics::count_token_issued(
            &route,
            facts.account.as_deref().unwrap_or(""),
        );
    }
    if let Some(caller) = &facts.caller {
        // For the request's log line (see crate::http::middleware), written after this returns.
        response
            .extensions_mut()
            .insert(CallerName(Arc::clone(caller)));
    }
    state.audit.record(AuditEvent {
        at_ms: now_ms(),
        request_id,
        caller: facts.caller,
        route,
        account: facts.account,
        target_user: facts.target_user,
        target: facts.target,
        outcome: outcome.into(),
        status: status.as_u16(),
    });
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Event `n`, timed now: the writer's first prune (at start, of events older than the
    /// retention) must not take it. Timed at 1970, as they once were, the events were deleted
    /// whenever that prune came after their write (about one run in four).
    fn event(n: usize) -> AuditEvent {
        AuditEvent {
            at_ms: now_ms() + n as i64,
            request_id: None,
            caller: Some("web".into()),
            route: "POST /v1/meeting-sdk/signature".into(),
            account: Some("prod".into()),
            target_user: None,
            target: Some(n.to_string()),
            outcome: "issued".into(),
            status: 200,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stopping_writes_every_queued_event_and_drops_later_ones() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("audit.db").display());
        let store = crate::store::connect(&url.into()).await.unwrap();
        let log = AuditLog::start(Arc::clone(&store), Duration::from_secs(3600));

        // More than a batch, most of it still queued when the stop comes.
        for n in 0..BATCH + 500 {
            log.record(event(n));
        }
        log.flush_and_stop().await;
        log.record(event(BATCH + 500));

        assert_eq!(log.dropped(), 1, "an event after the stop is dropped");
        let stored = store.list_audit(0, None, 10_000).await.unwrap();
        assert_eq!(
            stored.len(),
            BATCH + 500,
            "every event before it is written"
        );
    }
}
