//! The S2S tokens every replica shares through Redis: sealed with `cache.encryption_key`
//! (AES-256-GCM), so a Redis dump is not a Zoom credential, and fetched under a lock with an
//! owner token and an expiry, so a cold cache across any number of replicas costs one token
//! request. If the lock holder dies, its lock expires and another replica takes over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{AsyncCommands, Script};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::clock;
use crate::redis_link::{REDIS_CALL_TIMEOUT, RedisLink};
use crate::sealing::Sealer;
use crate::zoom::S2sToken;

/// Deletes the lock only if this replica still owns it.
const UNLOCK_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Redis did not answer: the caller works on its own.
#[derive(Debug)]
pub struct Unavailable;

#[derive(Serialize, Deserialize)]
struct Stored {
    access_token: String,
    token_type: String,
    scope: String,
    /// Unix milliseconds.
    expires_at_ms: i64,
    lifetime_s: u64,
    /// Zoom's `api_url`, already validated; absent from tokens stored before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_url: Option<String>,
}

pub struct SharedTokens {
    link: Arc<RedisLink>,
    sealer: Sealer,
    prefix: String,
    unlock: Script,
}

impl SharedTokens {
    pub async fn open(url: &str, key: &[u8; 32], prefix: &str) -> Result<Self, redis::RedisError> {
        let unlock = Script::new(UNLOCK_SCRIPT);
        Ok(Self {
            link: RedisLink::open(url, "tokens", vec![unlock.clone()]).await?,
            sealer: Sealer::new(key),
            prefix: prefix.to_string(),
            unlock,
        })
    }

    pub fn degraded(&self) -> bool {
        self.link.degraded()
    }

    /// Whether Redis answers now (a `PING`; while it is known to be down, no wait).
    pub async fn ping(&self) -> bool {
        self.run(async |c| redis::cmd("PING").query_async::<String>(c).await)
            .await
            .is_ok()
    }

    fn token_key(&self, account: &str) -> String {
        format!("{}s2s:{account}", self.prefix)
    }

    pub fn lock_key(&self, account: &str) -> String {
        format!("{}s2s-lock:{account}", self.prefix)
    }

    /// Runs one Redis operation with the link's timeout; a failure marks Redis down.
    async fn run<T>(
        &self,
        operation: impl AsyncFnOnce(&mut redis::aio::MultiplexedConnection) -> redis::RedisResult<T>,
    ) -> Result<T, Unavailable> {
        let mut connection = self.link.connection().ok_or(Unavailable)?;
        match tokio::time::timeout(REDIS_CALL_TIMEOUT, operation(&mut connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                self.link.failed(&error.to_string());
                Err(Unavailable)
            }
            Err(_) => {
                self.link.failed("no answer in time");
                Err(Unavailable)
            }
        }
    }

    /// The shared token of `account`, if there is one that opens.
    pub async fn read(&self, account: &str) -> Result<Option<S2sToken>, Unavailable> {
        let key = self.token_key(account);
        let sealed: Option<Vec<u8>> = self.run(async |c| c.get(&key).await).await?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        // A value that does not open (another key, corrupt) counts as absent.
        let Ok(plain) = self.sealer.open(&sealed, &key) else {
            return Ok(None);
        };
        let Ok(stored) = serde_json::from_slice::<Stored>(&plain) else {
            return Ok(None);
        };
        let left_ms = stored.expires_at_ms - clock::now() * 1000;
        if left_ms <= 0 {
            return Ok(None);
        }
        Ok(Some(S2sToken {
            access_token: SecretString::from(stored.access_token),
            token_type: stored.token_type,
            scope: stored.scope,
            expires_at: stored.expires_at_ms / 1000,
            expires: Instant::now() + Duration::from_millis(left_ms as u64),
            lifetime: Duration::from_secs(stored.lifetime_s),
            api_url: stored
                .api_url
                .as_deref()
                .and_then(crate::zoom::zoom_api_url),
        }))
    }

    /// Publishes a token for every replica, kept in Redis until it expires.
    pub async fn publish(&self, account: &str, token: &S2sToken) -> Result<(), Unavailable> {
        let key = self.token_key(account);
        let left_ms = token
            .expires
            .saturating_duration_since(Instant::now())
            .as_millis() as u64;
        if left_ms == 0 {
            return Ok(());
        }
        let stored = Stored {
            access_token: token.access_token.expose_secret().to_string(),
            token_type: token.token_type.clone(),
            scope: token.scope.clone(),
            expires_at_ms: clock::now() * 1000 + left_ms as i64,
            lifetime_s: token.lifetime.as_secs(),
            api_url: token.api_url.as_ref().map(|url| url.to_string()),
        };
        let plain = serde_json::to_vec(&stored).map_err(|_| Unavailable)?;
        let sealed = self.sealer.seal(&plain, &key);
        self.run(async |c| c.pset_ex::<_, _, ()>(&key, sealed, left_ms).await)
            .await
    }

    /// Takes the fetch lock for `ttl` if nobody holds it.
    pub async fn try_lock(
        &self,
        account: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, Unavailable> {
        let key = self.lock_key(account);
        let ttl_ms = ttl.as_millis() as u64;
        let set: Option<String> = self
            .run(async |c| {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(owner)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async(c)
                    .await
            })
            .await?;
        Ok(set.is_some())
    }

    /// Releases the lock if this owner still holds it.
    pub async fn unlock(&self, account: &str, owner: &str) {
        let key = self.lock_key(account);
        let _ = self
            .run(async |c| {
                self.unlock
                    .key(&key)
                    .arg(owner)
                    .invoke_async::<i64>(c)
                    .await
            })
            .await;
    }

    /// Removes the shared token whatever it is (the account's credentials changed).
    pub async fn forget(&self, account: &str) {
        let key = self.token_key(account);
        let _ = self.run(async |c| c.del::<_, i64>(&key).await).await;
    }

    /// Removes the shared token if it is `refused` (Zoom refused it), so no replica reads it
    /// again; a newer token another replica published is kept.
    pub async fn drop_if(&self, account: &str, refused: &S2sToken) {
        if let Ok(Some(current)) = self.read(account).await
            && current.access_token.expose_secret() == refused.access_token.expose_secret()
        {
            let key = self.token_key(account);
            let _ = self.run(async |c| c.del::<_, i64>(&key).await).await;
        }
    }
}
