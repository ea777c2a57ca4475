//! Per-caller rate limits (GCRA): in-process with `governor`, or shared by every replica
//! through one Lua script in Redis, falling back to in-process while Redis does not answer.
//!
//! GCRA in one paragraph: a limit of `rate` a period (a second or a minute) and `burst` has an
//! emission interval T = period / `rate` and a tolerance τ = (`burst` − 1)·T. Each caller has a theoretical
//! arrival time (TAT); a request at `now` is allowed when `now ≥ TAT − τ`, and then moves the
//! TAT to `max(TAT, now) + T`. So `burst` requests may come at once, and after that one per T.
//! A refused request changes nothing, and its `retry_after` is `TAT − τ − now`.
//!
//! While Redis is down each replica limits on its own, so a caller may get up to the limit
//! from every replica: the service stays up rather than refusing everyone.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::Quota;
use redis::RedisError;

mod local;
mod shared;
#[cfg(test)]
mod tests;

use local::LocalLimiter;
use shared::SharedLimiter;

/// A limit: sustained rate and burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Limit {
    /// Requests per `period`, sustained. 0 is taken as 1.
    rate: u32,
    /// Requests that may come at once. 0 is taken as 1.
    burst: u32,
    period: Period,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Period {
    Second,
    Minute,
}

impl Limit {
    /// `rate` a second, `burst` at once.
    pub const fn per_second(rate: u32, burst: u32) -> Self {
        Self {
            rate,
            burst,
            period: Period::Second,
        }
    }

    /// `rate` a minute, all of them at once if the caller likes.
    pub const fn per_minute(rate: u32) -> Self {
        Self {
            rate,
            burst: rate,
            period: Period::Minute,
        }
    }

    /// The limit with both numbers at least 1: a limit of 0 would refuse everything forever,
    /// which no configuration means.
    fn normalised(self) -> Self {
        Self {
            rate: self.rate.max(1),
            burst: self.burst.max(1),
            period: self.period,
        }
    }

    fn period_micros(self) -> u64 {
        match self.period {
            Period::Second => 1_000_000,
            Period::Minute => 60_000_000,
        }
    }

    /// Emission interval T, in µs, rounded up so the sustained rate is never exceeded.
    fn interval_micros(self) -> u64 {
        self.period_micros().div_ceil(u64::from(self.rate.max(1)))
    }

    /// Tolerance τ = (burst − 1)·T, in µs.
    fn tolerance_micros(self) -> u64 {
        self.interval_micros() * u64::from(self.burst.max(1) - 1)
    }

    fn quota(self) -> Quota {
        let rate = NonZeroU32::new(self.rate).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN);
        match self.period {
            Period::Second => Quota::per_second(rate),
            Period::Minute => Quota::per_minute(rate),
        }
        .allow_burst(burst)
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.period {
            Period::Second => write!(f, "{}/s (burst {})", self.rate, self.burst),
            Period::Minute => write!(f, "{}/min", self.rate),
        }
    }
}

/// What one caller may spend of one kind of budget: the key it is counted under, and the limit.
#[derive(Clone, Debug)]
pub struct Budget {
    pub key: Arc<str>,
    pub limit: Limit,
}

/// The answer to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Refused; the next request would be allowed after `retry_after` (not rounded: the HTTP
    /// edge rounds it up to whole seconds for `Retry-After`).
    Limited {
        retry_after: Duration,
    },
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    /// The Redis URL cannot be used (the URL itself is not repeated: it may hold a password).
    #[error("the rate limiter's Redis URL is not valid: {0}")]
    InvalidUrl(#[source] RedisError),
}

/// Per-caller rate limits, in-process or shared through Redis. Cheap to share behind an `Arc`.
pub struct RateLimiter {
    local: LocalLimiter,
    shared: Option<Arc<SharedLimiter>>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the Redis URL: it may hold a password.
        f.debug_struct("RateLimiter")
            .field("backend", &self.backend())
            .field("degraded", &self.degraded())
            .finish()
    }
}

impl RateLimiter {
    /// In-process limiter: one replica's own count. Idle callers are forgotten every 30 s.
    pub fn in_process() -> Self {
        Self {
            local: LocalLimiter::new(),
            shared: None,
        }
    }

    /// Shared limiter: GCRA in Redis, keys `{prefix}rl:{caller}` (production's prefix is
    /// `cache.key_prefix`; tests use their own to stay apart).
    ///
    /// Fails only on a URL that cannot be used. An unreachable Redis does not stop the start:
    /// the limiter comes up degraded (one warning), limits in-process, and tries Redis again
    /// at most once a second, in the background, until it answers (one info line). This
    /// call waits at most about half a second for Redis.
    pub async fn redis(url: &str, prefix: &str) -> Result<Self, RateLimitError> {
        let shared = Arc::new(
            SharedLimiter::open(url, prefix)
                .await
                .map_err(RateLimitError::InvalidUrl)?,
        );
        Ok(Self {
            local: LocalLimiter::new(),
            shared: Some(shared),
        })
    }

    /// Checks and counts one request of `caller` against `limit`. The limit may differ
    /// between callers and change between calls.
    pub async fn check(&self, caller: impl Into<Arc<str>>, limit: Limit) -> Decision {
        let caller = caller.into();
        let limit = limit.normalised();
        if let Some(shared) = &self.shared
            && let Some(decision) = shared.check(&caller, limit).await
        {
            return decision;
        }
        self.local.check(&caller, limit)
    }

    /// `"redis"` or `"in-process"`: what the limiter was built with.
    pub fn backend(&self) -> &'static str {
        if self.shared.is_some() {
            "redis"
        } else {
            "in-process"
        }
    }

    /// Whether a Redis limiter is limiting in-process because Redis does not answer.
    pub fn degraded(&self) -> bool {
        self.shared.as_ref().is_some_and(|s| s.degraded())
    }
}
