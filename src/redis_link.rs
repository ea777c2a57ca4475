//! A Redis connection that fails fast: short timeouts, and after a failure no request waits
//! on Redis again until a background probe (at most once a second) finds it answering. One
//! warning when it goes, one info line when it comes back. Shared by the rate limiter and the
//! shared token cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError, Script};

/// Longest wait for a TCP connection to Redis.
const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// Longest wait for one Redis reply.
const REDIS_RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);
/// Longest wait for one whole operation in Redis (a script, and loading it again after a
/// Redis restart: up to three round trips).
pub const REDIS_CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// After Redis failed, how long before it is tried again, in ms.
const REDIS_RETRY_MS: u64 = 1_000;
/// `retry_at_ms` while Redis answers.
const HEALTHY: u64 = 0;

pub struct RedisLink {
    client: redis::Client,
    /// While Redis answers; dropped on any failure and made again by the next probe.
    connection: ArcSwapOption<MultiplexedConnection>,
    /// Loaded on every (re)connection, so their first use needs one round trip.
    scripts: Vec<Script>,
    /// What uses this link, for log lines ("rate limits", "tokens").
    what: &'static str,
    /// `HEALTHY`, or when Redis may next be probed, in ms since `epoch` (never 0 then).
    retry_at_ms: AtomicU64,
    epoch: Instant,
}

impl RedisLink {
    /// Fails only on a URL that cannot be used; an unreachable Redis starts degraded (one
    /// warning) and is probed in the background. Waits at most about half a second.
    pub async fn open(
        url: &str,
        what: &'static str,
        scripts: Vec<Script>,
    ) -> Result<Arc<Self>, RedisError> {
        let link = Arc::new(Self {
            client: redis::Client::open(url)?,
            connection: ArcSwapOption::empty(),
            scripts,
            what,
            retry_at_ms: AtomicU64::new(HEALTHY),
            epoch: Instant::now(),
        });
        if let Err(error) = link.connect().await {
            link.failed(&error);
        }
        Ok(link)
    }

    /// The connection while Redis answers (cloning it is cheap: one shared socket); `None`
    /// while it is down, and then perhaps a background probe.
    pub fn connection(self: &Arc<Self>) -> Option<MultiplexedConnection> {
        let retry_at = self.retry_at_ms.load(Ordering::Acquire);
        if retry_at != HEALTHY {
            self.probe_if_due(retry_at);
            return None;
        }
        Some(MultiplexedConnection::clone(&*self.connection.load_full()?))
    }

    pub fn degraded(&self) -> bool {
        self.retry_at_ms.load(Ordering::Acquire) != HEALTHY
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Marks Redis down until the next probe says otherwise. Only the first failure of an
    /// outage is logged.
    pub fn failed(&self, error: &str) {
        self.connection.store(None);
        let next = self.now_ms().saturating_add(REDIS_RETRY_MS);
        if self.retry_at_ms.swap(next, Ordering::AcqRel) == HEALTHY {
            tracing::warn!(
                error,
                "Redis for {} does not answer; working per replica until it does",
                self.what
            );
        }
    }

    /// Starts one background probe when one is due; the caller does not wait for it.
    fn probe_if_due(self: &Arc<Self>, retry_at: u64) {
        let now = self.now_ms();
        if now < retry_at {
            return;
        }
        // Whoever moves `retry_at_ms` on owns this probe.
        let claimed = self
            .retry_at_ms
            .compare_exchange(
                retry_at,
                now.saturating_add(REDIS_RETRY_MS),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        if !claimed {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            if this.connect().await.is_ok()
                && this.retry_at_ms.swap(HEALTHY, Ordering::AcqRel) != HEALTHY
            {
                tracing::info!("Redis for {} answers again; shared again", this.what);
            }
        });
    }

    /// Connects and loads the scripts, within `REDIS_CALL_TIMEOUT`.
    async fn connect(&self) -> Result<(), String> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(REDIS_CONNECT_TIMEOUT))
            .set_response_timeout(Some(REDIS_RESPONSE_TIMEOUT));
        let attempt = async {
            let mut connection = self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            for script in &self.scripts {
                script.load_async(&mut connection).await?;
            }
            Ok::<_, RedisError>(connection)
        };
        match tokio::time::timeout(REDIS_CALL_TIMEOUT, attempt).await {
            Ok(Ok(connection)) => {
                self.connection.store(Some(Arc::new(connection)));
                Ok(())
            }
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no answer within {REDIS_CALL_TIMEOUT:?}")),
        }
    }
}
