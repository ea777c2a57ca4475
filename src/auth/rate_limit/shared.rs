//! Limits shared by every replica: GCRA in one Lua script in Redis, on Redis's clock.

use std::sync::Arc;
use std::time::Duration;

use redis::{RedisError, Script};

use super::{Decision, Limit};
use crate::redis_link::{REDIS_CALL_TIMEOUT, RedisLink};

/// GCRA for one caller. KEYS[1]: the caller's key. ARGV[1]: emission interval, ARGV[2]:
/// tolerance, both in µs. Returns `{1, 0}` when the request is allowed (and counted), or
/// `{0, µs until the next request would be allowed}`.
///
/// Time is Redis's own `TIME`, so replicas with skewed clocks agree. µs since the epoch
/// (~1.8e15) are exact in Lua's doubles (2^53 ≈ 9e15). The key lives exactly until the
/// caller's budget is full again, when a missing key means the same thing.
const GCRA_SCRIPT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then
  return {0, allow_at - now}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, 0}
";

/// The Redis side of a shared limiter.
pub(super) struct SharedLimiter {
    link: Arc<RedisLink>,
    prefix: String,
    script: Script,
}

impl SharedLimiter {
    /// The limiter of the Redis at `url`, keys under `prefix` (see [`RedisLink::open`]).
    pub(super) async fn open(url: &str, prefix: &str) -> Result<Self, RedisError> {
        let script = Script::new(GCRA_SCRIPT);
        let link = RedisLink::open(url, "rate limits", vec![script.clone()]).await?;
        Ok(Self {
            link,
            prefix: prefix.to_owned(),
            script,
        })
    }

    /// The decision from Redis, or `None` when Redis cannot give one now and the caller must
    /// limit in-process.
    pub(super) async fn check(self: &Arc<Self>, caller: &str, limit: Limit) -> Option<Decision> {
        let mut connection = self.link.connection()?;
        let key = format!("{}rl:{caller}", self.prefix);
        let mut invocation = self.script.key(key);
        invocation
            .arg(limit.interval_micros())
            .arg(limit.tolerance_micros());
        let call = invocation.invoke_async::<(u8, u64)>(&mut connection);
        let error = match tokio::time::timeout(REDIS_CALL_TIMEOUT, call).await {
            Ok(Ok((1, _))) => return Some(Decision::Allowed),
            Ok(Ok((_, retry_after_us))) => {
                return Some(Decision::Limited {
                    retry_after: Duration::from_micros(retry_after_us),
                });
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer within {REDIS_CALL_TIMEOUT:?}"),
        };
        self.link.failed(&error);
        None
    }

    pub(super) fn degraded(&self) -> bool {
        self.link.degraded()
    }
}
