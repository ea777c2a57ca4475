//! Prometheus metrics: one process-wide recorder (the `metrics` crate), rendered at
//! `GET /metrics`. Every series starts with `ztv_`; labels never carry a token, key or user.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use axum::http::Method;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets, in seconds: sub-millisecond signing up to Zoom's slowest answers.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histogram samples are folded into their buckets. Until then each request's
/// latency sample waits in memory, so this bounds how many a busy server holds (the
/// exporter's own default, five seconds, is five times as many).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The process's recorder, installed on first use (tests build many apps in one process),
/// with its upkeep running.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .expect("static buckets are valid")
                .install_recorder()
                .expect("ztv installs the only metrics recorder");
            spawn_upkeep(handle.clone());
            handle
        })
        .clone()
}

/// `install_recorder` leaves the upkeep to its caller: without it every histogram sample
/// (one or more per request) stays queued until the next render of `/metrics`, so a server
/// nobody scrapes grows without bound.
/// A plain thread, not a task, so it outlives any one runtime (tests run many).
fn spawn_upkeep(handle: PrometheusHandle) {
    let started = spawn_every("ztv-metrics-upkeep", UPKEEP_INTERVAL, move || {
        handle.run_upkeep();
    });
    if let Err(error) = started {
        tracing::warn!(%error, "cannot start the metrics upkeep; only scrapes drain histograms");
    }
}

/// Runs `work` every `every` on a thread of its own named `name`, for the life of the process.
pub(crate) fn spawn_every(
    name: &str,
    every: Duration,
    mut work: impl FnMut() + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                work();
            }
        })
        .map(drop)
}

/// The Prometheus text of every series.
pub fn render() -> String {
    handle().render()
}

/// Counts one answered request of `route` and `method` with `status`, and how long it took.
pub fn count_request(route: &str, method: &'static str, status: u16, took: Duration) {
    let (requests, duration) = http_series(route, method, status);
    requests.increment(1);
    duration.record(took.as_secs_f64());
}

/// A method as a label: the standard ones by name, anything else as `OTHER`, so that callers
/// inventing methods cannot grow the number of series.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// Series handles by their labels. The `metrics!` macros build a label set and look it up in
/// the recorder's registry on every call (a few allocations and a hash of every label);
/// requests instead find their handles here with one lookup and no allocation. Routes are
/// the router's own patterns (`MatchedPath`) and accounts the configured ones, so the maps
/// stay as small as the series they name.
#[derive(Default)]
struct Handles {
    /// `(method, status)` → route → its series.
    http: RwLock<HashMap<(&'static str, u16), ByName<HttpSeries>, Hasher>>,
    /// kind → account → `ztv_tokens_issued_total`.
    tokens: RwLock<HashMap<&'static str, ByName<Counter>, Hasher>>,
}

/// Handles by route or account, found by `&str`.
type ByName<T> = HashMap<Box<str>, T, Hasher>;

/// The maps' hasher: their keys are ztv's own routes, methods, statuses and accounts, never a
/// caller's text, so a fast hash does; SipHash was half of a request's metrics cost.
type Hasher = foldhash::fast::RandomState;

/// `ztv_http_requests_total` and `ztv_http_request_duration_seconds` of one route, method and
/// status.
type HttpSeries = (Counter, Histogram);

fn handles() -> &'static Handles {
    static HANDLES: OnceLock<Handles> = OnceLock::new();
    HANDLES.get_or_init(Handles::default)
}

fn http_series(route: &str, method: &'static str, status: u16) -> HttpSeries {
    let handles = &handles().http;
    if let Some(found) = read(handles)
        .get(&(method, status))
        .and_then(|by_route| by_route.get(route))
    {
        return found.clone();
    }
    write(handles)
        .entry((method, status))
        .or_default()
        .entry(route.into())
        .or_insert_with(|| {
            let route = route.to_owned();
            (
                metrics::counter!("ztv_http_requests_total", "route" => route.clone(), "method" => method, "status" => status.to_string()),
                metrics::histogram!("ztv_http_request_duration_seconds", "route" => route, "method" => method),
            )
        })
        .clone()
}

/// Counts a token issued by `route` (`"POST /v1/meeting-sdk/signature"`, as the audit log
/// names routes) for `account`, in `ztv_tokens_issued_total`.
pub fn count_token_issued(route: &str, account: &str) {
    let Some(kind) = token_kind(route) else {
        return;
    };
    let handles = &handles().tokens;
    let found = read(handles)
        .get(kind)
        .and_then(|by_account| by_account.get(account))
        .cloned();
    let counter = found.unwrap_or_else(|| {
        write(handles)
            .entry(kind)
            .or_default()
            .entry(account.into())
            .or_insert_with(|| {
                metrics::counter!("ztv_tokens_issued_total", "kind" => kind, "account" => account.to_owned())
            })
            .clone()
    });
    counter.increment(1);
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

/// Counts a `/v1` request refused before any caller was known (`route` as the audit log names
/// it), in `ztv_unauthenticated_refused_total`.
pub fn count_unauthenticated_refused(route: &str) {
    metrics::counter!("ztv_unauthenticated_refused_total", "route" => route.to_owned())
        .increment(1);
}

/// The kind of token a `/v1` route issues, for `ztv_tokens_issued_total`.
pub fn token_kind(route: &str) -> Option<&'static str> {
    Some(match route {
        r if r.ends_with("/v1/meeting-sdk/signature") => "meeting_sdk_signature",
        r if r.ends_with("/v1/video-sdk/token") => "video_sdk_token",
        r if r.ends_with("/zak") => "zak",
        r if r.ends_with("/obf-token") => "obf",
        r if r.ends_with("/v1/join") => "join",
        r if r.ends_with("/v1/s2s/token") => "s2s",
        _ => return None,
    })
}
