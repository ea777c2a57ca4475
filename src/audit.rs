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

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::store::{AuditEvent, Store};
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

    fn admit_unauthenticated(&self, peer: Option<IpAddr>) -> bool {
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

    /// Whether a refused request without a caller, from `peer`, is written (a few a second per
    /// client address and in all); the rest are only counted.
    pub fn samples_unauthenticated(&self, peer: Option<IpAddr>) -> bool {
        self.sampler.admit_unauthenticated(peer)
    }

    /// Whether a refusal (429) of `caller`, over its limits, is written (one a second each).
    pub fn samples_limited(&self, caller: &Arc<str>) -> bool {
        self.sampler.admit_limited(caller)
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

/// What a request's audit event says about it beyond its route and status: who asked, for
/// which account, about which Zoom user and meeting or session. Handlers fill it as they learn
/// each fact and hand it back on their response (see `http::answer::Audited`); the audit
/// middleware reads it there.
#[derive(Clone, Debug, Default)]
pub struct AuditFacts {
    pub caller: Option<Arc<str>>,
    /// The caller is an API client, so its name is one ztv's operators gave it (an end
    /// user's is their identity provider's subject).
    pub api_client: bool,
    pub account: Option<String>,
    /// A folded identity ([`ZoomUser::key`]).
    pub target_user: Option<String>,
    /// A meeting number or Video SDK session name.
    pub target: Option<String>,
}

impl AuditFacts {
    /// The facts of a request by `caller`.
    pub fn by(caller: impl Into<Arc<str>>) -> Self {
        Self {
            caller: Some(caller.into()),
            ..Self::default()
        }
    }

    pub fn account(&mut self, name: &str) {
        self.account = Some(name.to_string());
    }

    pub fn user(&mut self, user: &ZoomUser) {
        self.target_user = Some(user.key().to_string());
    }

    pub fn target(&mut self, target: &str) {
        self.target = Some(target.to_string());
    }
}

/// An event about a user's grant (`created`, `refreshed`, `refused` by Zoom, `deleted`), on
/// top of the event of the request it happened in, whose id it carries; `by` is that
/// request's caller, when there is one. `user_key` is the user's folded identity
/// ([`ZoomUser::key`]).
pub fn grant_event(
    action: &'static str,
    account: &str,
    user_key: &str,
    by: Option<Arc<str>>,
) -> AuditEvent {
    AuditEvent {
        at_ms: now_ms(),
        request_id: crate::telemetry::request_id::current(),
        caller: by,
        route: "user grant".into(),
        account: Some(account.to_string()),
        target_user: Some(user_key.to_string()),
        target: None,
        outcome: action.into(),
        status: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Event `n`, timed now: the writer's first prune (at start, of events older than the
    /// retention) must not take it, whether it comes before or after their write.
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
