//! The limiters, in process and in Redis (with `ZTV_TEST_REDIS_URL`).

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};

use super::*;

const SMALL: Limit = Limit::per_second(5, 2);
/// A limit that refills too slowly to matter within a test: exactly `burst` get through.
const SLOW: Limit = Limit::per_second(1, 5);

async fn count_allowed(limiter: &RateLimiter, caller: &str, limit: Limit, n: usize) -> usize {
    let mut allowed = 0;
    for _ in 0..n {
        if limiter.check(caller, limit).await.is_allowed() {
            allowed += 1;
        }
    }
    allowed
}

fn retry_after(decision: Decision) -> Duration {
    match decision {
        Decision::Limited { retry_after } => retry_after,
        Decision::Allowed => panic!("expected the request to be limited"),
    }
}

#[test]
fn limiter_can_be_shared_between_tasks() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<RateLimiter>();
}

#[test]
fn gcra_parameters_are_in_microseconds() {
    assert_eq!(SMALL.interval_micros(), 200_000);
    assert_eq!(SMALL.tolerance_micros(), 200_000);
    let odd = Limit::per_second(3, 1);
    assert_eq!(odd.interval_micros(), 333_334, "rounded up, never faster");
    assert_eq!(odd.tolerance_micros(), 0);
    let zero = Limit::per_second(0, 0);
    assert_eq!(zero.normalised(), Limit::per_second(1, 1));
}

#[tokio::test]
async fn in_process_allows_the_burst_then_limits_with_a_sensible_retry_after() {
    let limiter = RateLimiter::in_process();
    assert_eq!(limiter.backend(), "in-process");
    assert!(!limiter.degraded());

    assert_eq!(limiter.check("a", SMALL).await, Decision::Allowed);
    assert_eq!(limiter.check("a", SMALL).await, Decision::Allowed);
    let wait = retry_after(limiter.check("a", SMALL).await);

    // Two at once used the burst; the next one is one interval (200 ms) away.
    assert!(wait > Duration::from_millis(150), "{wait:?}");
    assert!(wait <= Duration::from_millis(200), "{wait:?}");
}

#[tokio::test]
async fn in_process_refills_over_time() {
    let limiter = RateLimiter::in_process();
    assert_eq!(count_allowed(&limiter, "a", SMALL, 5).await, 2);
    let wait = retry_after(limiter.check("a", SMALL).await);

    tokio::time::sleep(wait + Duration::from_millis(20)).await;

    assert_eq!(limiter.check("a", SMALL).await, Decision::Allowed);
    assert!(!limiter.check("a", SMALL).await.is_allowed());
}

#[tokio::test]
async fn in_process_callers_are_independent() {
    let limiter = RateLimiter::in_process();
    assert_eq!(count_allowed(&limiter, "a", SMALL, 5).await, 2);
    assert_eq!(count_allowed(&limiter, "b", SMALL, 5).await, 2);
    assert_eq!(count_allowed(&limiter, "a:b", SMALL, 5).await, 2);
}

#[tokio::test]
async fn in_process_a_changed_limit_takes_effect_at_once() {
    let limiter = RateLimiter::in_process();
    assert_eq!(count_allowed(&limiter, "a", SMALL, 5).await, 2);

    let larger = Limit::per_second(5, 10);
    assert_eq!(count_allowed(&limiter, "a", larger, 20).await, 10);

    let smaller = Limit::per_second(1, 1);
    assert_eq!(count_allowed(&limiter, "a", smaller, 5).await, 1);
    let wait = retry_after(limiter.check("a", smaller).await);
    assert!(wait > Duration::from_millis(900), "{wait:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_process_concurrent_requests_get_exactly_the_burst() {
    let limiter = Arc::new(RateLimiter::in_process());
    let allowed = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let limiter = Arc::clone(&limiter);
            let allowed = Arc::clone(&allowed);
            tokio::spawn(async move {
                if limiter.check("busy", SLOW).await.is_allowed() {
                    allowed.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(allowed.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn in_process_forgets_idle_callers() {
    let limiter = LocalLimiter::new();
    let tiny = Limit::per_second(100, 1);
    limiter.check(&"a".into(), tiny);
    limiter.check(&"b".into(), SMALL);
    tokio::time::sleep(Duration::from_millis(30)).await;

    // Make the sweep due now.
    limiter.next_sweep_ms.store(0, Ordering::SeqCst);
    limiter.check(&"b".into(), SMALL);

    // "a" (10 ms to refill) is forgotten, and with it its limit; "b" is still counted.
    let by_limit = limiter.by_limit.read().unwrap();
    assert!(!by_limit.contains_key(&tiny));
    assert_eq!(by_limit[&SMALL].len(), 1);
}

// --- Redis ---------------------------------------------------------------------------

/// The test server's URL, or `None` (after saying so loudly) when there is none.
fn redis_url(test: &str) -> Option<String> {
    match std::env::var("ZTV_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("ZTV_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") => {
            panic!("{test}: ZTV_TEST_REQUIRE_SERVICES=1 but ZTV_TEST_REDIS_URL is not set")
        }
        _ => {
            eprintln!("SKIPPED: {test} needs Redis; set ZTV_TEST_REDIS_URL");
            None
        }
    }
}

fn fresh_prefix() -> String {
    format!("ztv-test-{}:", uuid::Uuid::new_v4())
}

/// Log lines written while the guard lives on this thread (tests run on a current-thread
/// runtime, so spawned tasks log here too).
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let logs = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || logs.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn lines_with(&self, level: &str) -> usize {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        text.lines().filter(|line| line.contains(level)).count()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A TCP proxy to `target` that, while closed, drops every connection at once; it counts
/// the connections it was offered. It starts closed.
struct Proxy {
    url: String,
    open: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
    forwarding: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    /// Refuses new connections and cuts the open ones, as a Redis that died would.
    fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
        for task in self.forwarding.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

async fn proxy_to(target: Option<String>) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = Proxy {
        url: format!("redis://{}", listener.local_addr().unwrap()),
        open: Arc::default(),
        connections: Arc::default(),
        forwarding: Arc::default(),
    };
    let (open, connections, forwarding) = (
        Arc::clone(&proxy.open),
        Arc::clone(&proxy.connections),
        Arc::clone(&proxy.forwarding),
    );
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            connections.fetch_add(1, Ordering::SeqCst);
            let Some(target) = target.clone().filter(|_| open.load(Ordering::SeqCst)) else {
                continue;
            };
            let task = tokio::spawn(async move {
                let mut outbound = TcpStream::connect(target).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
            forwarding.lock().unwrap().push(task.abort_handle());
        }
    });
    proxy
}

/// `host:port` of a `redis://` URL.
fn address_of(url: &str) -> String {
    let parsed = url::Url::parse(url).unwrap();
    format!(
        "{}:{}",
        parsed.host_str().unwrap(),
        parsed.port().unwrap_or(6379)
    )
}

#[tokio::test]
async fn redis_allows_the_burst_then_limits_with_a_sensible_retry_after() {
    let Some(url) = redis_url("redis_allows_the_burst_then_limits") else {
        return;
    };
    let limiter = RateLimiter::redis(&url, &fresh_prefix()).await.unwrap();
    assert_eq!(limiter.backend(), "redis");
    assert!(!limiter.degraded());

    assert_eq!(limiter.check("a", SMALL).await, Decision::Allowed);
    assert_eq!(limiter.check("a", SMALL).await, Decision::Allowed);
    let wait = retry_after(limiter.check("a", SMALL).await);
    assert!(wait > Duration::from_millis(100), "{wait:?}");
    assert!(wait <= Duration::from_millis(200), "{wait:?}");

    tokio::time::sleep(wait + Duration::from_millis(20)).await;
    assert_eq!(limiter.check("a", SMALL).await, Decision::Allowed);
    assert!(!limiter.check("a", SMALL).await.is_allowed());
    assert!(!limiter.degraded());
}

#[tokio::test]
async fn redis_keys_expire_when_the_budget_is_full_again() {
    let Some(url) = redis_url("redis_keys_expire_when_the_budget_is_full_again") else {
        return;
    };
    let prefix = fresh_prefix();
    let limiter = RateLimiter::redis(&url, &prefix).await.unwrap();
    let caller = "odd {caller} name: ü\n*";

    assert_eq!(count_allowed(&limiter, caller, SMALL, 3).await, 2);

    let mut redis = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}rl:{caller}"))
        .query_async(&mut redis)
        .await
        .unwrap();
    // Two requests at once: the TAT is two intervals (400 ms) ahead.
    assert!((200..=400).contains(&ttl_ms), "{ttl_ms}");
    assert_eq!(count_allowed(&limiter, "other", SMALL, 3).await, 2);
}

#[tokio::test]
async fn redis_replicas_share_one_callers_budget() {
    let Some(url) = redis_url("redis_replicas_share_one_callers_budget") else {
        return;
    };
    let prefix = fresh_prefix();
    let one = RateLimiter::redis(&url, &prefix).await.unwrap();
    let two = RateLimiter::redis(&url, &prefix).await.unwrap();

    let allowed = count_allowed(&one, "shared", SLOW, 3).await
        + count_allowed(&two, "shared", SLOW, 3).await
        + count_allowed(&one, "shared", SLOW, 3).await;

    assert_eq!(allowed, 5);
    assert_eq!(count_allowed(&two, "someone else", SLOW, 10).await, 5);
}

#[tokio::test]
async fn redis_a_changed_limit_takes_effect_at_once() {
    let Some(url) = redis_url("redis_a_changed_limit_takes_effect_at_once") else {
        return;
    };
    let limiter = RateLimiter::redis(&url, &fresh_prefix()).await.unwrap();
    assert_eq!(count_allowed(&limiter, "a", SMALL, 5).await, 2);

    // The caller's arrival time carries over: 8 of the larger burst of 10 remain.
    let larger = Limit::per_second(5, 10);
    assert_eq!(count_allowed(&limiter, "a", larger, 20).await, 8);

    let smaller = Limit::per_second(1, 1);
    assert!(!limiter.check("a", smaller).await.is_allowed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_concurrent_requests_across_replicas_get_exactly_the_burst() {
    let Some(url) = redis_url("redis_concurrent_requests_across_replicas") else {
        return;
    };
    let prefix = fresh_prefix();
    let replicas = [
        Arc::new(RateLimiter::redis(&url, &prefix).await.unwrap()),
        Arc::new(RateLimiter::redis(&url, &prefix).await.unwrap()),
    ];
    let allowed = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let limiter = Arc::clone(&replicas[i % 2]);
            let allowed = Arc::clone(&allowed);
            tokio::spawn(async move {
                if limiter.check("busy", SLOW).await.is_allowed() {
                    allowed.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }

    assert_eq!(allowed.load(Ordering::SeqCst), 5);
    assert!(replicas.iter().all(|r| !r.degraded()));
}

#[tokio::test]
async fn redis_down_at_start_degrades_to_in_process_with_one_warning() {
    let logs = CapturedLogs::default();
    let _guard = logs.install();

    // A guard against a start that waits on the dead Redis, not a timing claim.
    let limiter = tokio::time::timeout(
        Duration::from_secs(30),
        RateLimiter::redis("redis://127.0.0.1:1", &fresh_prefix()),
    )
    .await
    .expect("the start does not wait on a dead Redis")
    .unwrap();

    assert_eq!(limiter.backend(), "redis");
    assert!(limiter.degraded());
    assert_eq!(count_allowed(&limiter, "a", SMALL, 5).await, 2);
    let wait = retry_after(limiter.check("a", SMALL).await);
    assert!(wait <= Duration::from_millis(200), "{wait:?}");
    // Degraded, a check never waits on Redis: it is answered at its first poll.
    for _ in 0..100 {
        futures_util::FutureExt::now_or_never(limiter.check("a", SMALL))
            .expect("a check never waits on a dead Redis");
    }
    assert_eq!(logs.lines_with("WARN"), 1);
    assert!(limiter.degraded());
}

#[tokio::test]
async fn a_bad_redis_url_fails_without_repeating_it() {
    let error = RateLimiter::redis("http://user:hunter2@example.com", "ztv:")
        .await
        .unwrap_err();
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

#[tokio::test]
async fn a_dead_redis_is_probed_at_most_once_a_second_in_the_background() {
    let proxy = proxy_to(None).await;
    let limiter = RateLimiter::redis(&proxy.url, &fresh_prefix())
        .await
        .unwrap();
    assert!(limiter.degraded());
    let at_start = proxy.connections.load(Ordering::SeqCst);
    assert!(at_start >= 1);

    for _ in 0..200 {
        limiter.check("a", SMALL).await;
    }
    tokio::task::yield_now().await;
    assert_eq!(proxy.connections.load(Ordering::SeqCst), at_start);

    tokio::time::sleep(Duration::from_millis(1_050)).await;
    // A probe is due: the first check starts it, and no check waits for it (each is
    // answered at its first poll, never pending on the probe or on Redis).
    for _ in 0..200 {
        futures_util::FutureExt::now_or_never(limiter.check("a", SMALL)).expect("no request waits");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(proxy.connections.load(Ordering::SeqCst), at_start + 1);
    assert!(limiter.degraded());
}

#[tokio::test]
async fn redis_that_comes_back_is_used_again_with_one_info_line() {
    let Some(url) = redis_url("redis_that_comes_back_is_used_again") else {
        return;
    };
    let logs = CapturedLogs::default();
    let _guard = logs.install();
    let proxy = proxy_to(Some(address_of(&url))).await;
    let prefix = fresh_prefix();
    let through_proxy = RateLimiter::redis(&proxy.url, &prefix).await.unwrap();
    let direct = RateLimiter::redis(&url, &prefix).await.unwrap();
    assert!(through_proxy.degraded());
    assert_eq!(count_allowed(&through_proxy, "x", SLOW, 10).await, 5);

    // Redis comes back; the next request after a second starts a probe.
    proxy.open();
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    through_proxy.check("x", SLOW).await;
    for _ in 0..50 {
        if !through_proxy.degraded() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!through_proxy.degraded());

    // Now both count against one budget in Redis.
    assert_eq!(count_allowed(&direct, "y", SLOW, 10).await, 5);
    assert!(!through_proxy.check("y", SLOW).await.is_allowed());
    assert_eq!(logs.lines_with("WARN"), 1);
    assert_eq!(logs.lines_with("INFO"), 1);
}

#[tokio::test]
async fn redis_that_goes_away_is_logged_once_and_its_return_once() {
    let Some(url) = redis_url("redis_that_goes_away_is_logged_once") else {
        return;
    };
    let logs = CapturedLogs::default();
    let _guard = logs.install();
    let proxy = proxy_to(Some(address_of(&url))).await;
    proxy.open();
    let prefix = fresh_prefix();
    let through_proxy = Arc::new(RateLimiter::redis(&proxy.url, &prefix).await.unwrap());
    let direct = RateLimiter::redis(&url, &prefix).await.unwrap();
    assert!(!through_proxy.degraded());
    assert_eq!(count_allowed(&direct, "x", SLOW, 10).await, 5);
    assert!(!through_proxy.check("x", SLOW).await.is_allowed());

    // Redis dies under many requests at once: they are all answered, in-process.
    proxy.close();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let limiter = Arc::clone(&through_proxy);
            tokio::spawn(async move { limiter.check("z", SLOW).await.is_allowed() })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        allowed += usize::from(task.await.unwrap());
    }
    assert_eq!(allowed, 5);
    assert!(through_proxy.degraded());
    assert_eq!(logs.lines_with("WARN"), 1);

    // It comes back: a second later, a probe finds it, and the budget is shared again.
    proxy.open();
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    through_proxy.check("x", SLOW).await;
    for _ in 0..50 {
        if !through_proxy.degraded() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!through_proxy.degraded());
    assert_eq!(count_allowed(&direct, "y", SLOW, 10).await, 5);
    assert!(!through_proxy.check("y", SLOW).await.is_allowed());
    assert_eq!(logs.lines_with("WARN"), 1);
    assert_eq!(logs.lines_with("INFO"), 1);
}
