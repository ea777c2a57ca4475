//! The S2S token cache, the heart of ztv: one access token per account, fetched at most once
//! however many callers ask at once, refreshed in the background when less than the refresh
//! margin remains, so no caller waits while a valid token exists.
//!
//! With Redis (`cache.redis_url`) the token is shared by every replica: a replica keeps a
//! local copy (a warm read never goes to Redis), and when it needs a new token it first looks
//! in Redis, and otherwise fetches under the shared lock, so a cold cache across all replicas
//! costs one token request. If Redis does not answer, each replica fetches on its own (still
//! single-flight within the replica) until it does.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::config::{Account, S2sCredentials, Settings};
use tracing::{Instrument, Span};

use crate::flight::{self, SingleFlight};
use crate::tokens::shared::SharedTokens;
use crate::zoom::{S2sToken, ZoomClient, ZoomError};

/// After a background refresh fails, the next one waits this long (the token in hand is
/// still served meanwhile).
const REFRESH_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// One account's token and refresh state.
#[derive(Default)]
struct Slot {
    token: Option<Arc<S2sToken>>,
    /// No background refresh before this.
    quiet_until: Option<Instant>,
}

/// What a readiness report says of one account's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenState {
    /// Never fetched, or dropped.
    Empty,
    /// Valid for this many more seconds.
    Valid {
        seconds_left: u64,
    },
    Expired,
}

pub struct TokenCache {
    zoom: Arc<ZoomClient>,
    /// Replaced by a reload; a fetch keeps its token only if its credentials are still current.
    credentials: Arc<ArcSwap<HashMap<String, Arc<S2sCredentials>>>>,
    margin: Duration,
    slots: Arc<Mutex<HashMap<String, Slot>>>,
    flights: SingleFlight<String, Arc<S2sToken>, ZoomError>,
    shared: Option<Arc<SharedTokens>>,
    /// How long the shared fetch lock is held at most: longer than one call to Zoom.
    lock_ttl: Duration,
}

/// How often a replica waiting on another's fetch looks in Redis.
const SHARED_POLL: Duration = Duration::from_millis(50);

impl TokenCache {
    pub fn new(
        zoom: Arc<ZoomClient>,
        settings: &Settings,
        shared: Option<Arc<SharedTokens>>,
    ) -> Self {
        Self {
            zoom,
            credentials: Arc::new(ArcSwap::from_pointee(credentials_of(&settings.accounts))),
            margin: settings.zoom.refresh_margin,
            slots: Arc::default(),
            flights: SingleFlight::default(),
            shared,
            lock_ttl: settings.zoom.call_deadline + Duration::from_secs(2),
        }
    }

    /// Puts reloaded credentials in force. The token of every account whose credentials
    /// changed (or went) is dropped here and, with Redis, for every replica; returns those
    /// accounts.
    pub async fn replace_credentials(&self, accounts: &BTreeMap<String, Account>) -> Vec<String> {
        let next = credentials_of(accounts);
        let previous = self.credentials.swap(Arc::new(next.clone()));
        let changed: Vec<String> = previous
            .keys()
            .chain(next.keys())
            .filter(|name| match (previous.get(*name), next.get(*name)) {
                (Some(old), Some(new)) => !old.same_as(new),
                _ => true,
            })
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            for name in &changed {
                slots.remove(name);
            }
        }
        if let Some(shared) = &self.shared {
            for name in &changed {
                shared.forget(name).await;
            }
        }
        changed
    }

    /// `None` without Redis; otherwise whether Redis answers now.
    pub async fn redis_answers(&self) -> Option<bool> {
        match &self.shared {
            Some(shared) => Some(shared.ping().await),
            None => None,
        }
    }

    /// A valid access token for `account`: the cached one, or one fetched now (once for all
    /// concurrent callers).
    pub async fn get(&self, account: &str) -> Result<Arc<S2sToken>, ZoomError> {
        let look = super::cache_span("s2s");
        let now = Instant::now();
        let (cached, refresh) = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            let slot = slots.entry(account.to_string()).or_default();
            match &slot.token {
                Some(token) if usable(token, now) => {
                    let due = now + self.margin_for(token) >= token.expires
                        && slot.quiet_until.is_none_or(|t| t <= now);
                    if due {
                        slot.quiet_until = Some(now + REFRESH_RETRY_PAUSE);
                    }
                    (Some(Arc::clone(token)), due)
                }
                _ => (None, false),
            }
        };
        let label = account.to_string();
        look.record("ztv.cache.hit", cached.is_some());
        if let Some(token) = cached {
            metrics::counter!("ztv_s2s_cache_hits_total", "account" => label.clone()).increment(1);
            if refresh {
                metrics::counter!("ztv_s2s_cache_refreshes_total", "account" => label).increment(1);
                // Not awaited: the caller goes on with the token in hand.
                drop(self.fetch(account, &Span::none()));
            }
            return Ok(token);
        }
        metrics::counter!("ztv_s2s_cache_misses_total", "account" => label.clone()).increment(1);
        if self.flights.in_flight(&label) {
            metrics::counter!("ztv_s2s_single_flight_waits_total", "account" => label).increment(1);
        }
        let flight = look.in_scope(|| flight::span("s2s"));
        self.fetch(account, &flight)
            .instrument(flight)
            .instrument(look)
            .await
    }

    /// Drops `token` if it is still the cached one (Zoom refused it); a newer token that
    /// another caller already fetched is kept.
    pub async fn invalidate(&self, account: &str, token: &Arc<S2sToken>) {
        {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(slot) = slots.get_mut(account)
                && slot.token.as_ref().is_some_and(|t| Arc::ptr_eq(t, token))
            {
                tracing::warn!(account, "Zoom refused the cached access token; dropping it");
                slot.token = None;
            }
        }
        if let Some(shared) = &self.shared {
            shared.drop_if(account, token).await;
        }
    }

    pub fn state(&self, account: &str) -> TokenState {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        match slots.get(account).and_then(|s| s.token.as_ref()) {
            None => TokenState::Empty,
            Some(token) => match token.expires.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => TokenState::Valid {
                    seconds_left: left.as_secs(),
                },
                _ => TokenState::Expired,
            },
        }
    }

    /// Refresh when less than the margin remains, but never more than half the token's life
    /// (short-lived tokens would otherwise be refreshed on every call).
    fn margin_for(&self, token: &S2sToken) -> Duration {
        self.margin.min(token.lifetime / 2)
    }

    /// Joins or starts the one fetch for `account`; its result lands in the slot before the
    /// flight ends, so later callers find it there. `span` traces this caller's part in it.
    fn fetch(
        &self,
        account: &str,
        span: &Span,
    ) -> futures_util::future::Shared<
        futures_util::future::BoxFuture<'static, Result<Arc<S2sToken>, ZoomError>>,
    > {
        let key = account.to_string();
        self.flights.join_or_start_in(&key, span, || {
            let zoom = Arc::clone(&self.zoom);
            let credentials = self.credentials.load().get(account).cloned();
            let current = Arc::clone(&self.credentials);
            let slots = Arc::clone(&self.slots);
            let account = account.to_string();
            let shared = self.shared.clone();
            let (margin, lock_ttl) = (self.margin, self.lock_ttl);
            async move {
                let credentials =
                    credentials.ok_or_else(|| ZoomError::NoS2sCredentials(account.clone()))?;
                // A caller who found no token just before a flight ended, and asked for one
                // just after, starts this flight: the token that flight kept is the answer. (A
                // refresh finds the token it replaces due, so it goes on.)
                if let Some(token) = slots
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&account)
                    .and_then(|slot| slot.token.clone())
                    .filter(|token| fresh(token, margin))
                {
                    return Ok(token);
                }
                let result = match shared {
                    Some(shared) => {
                        fetch_shared(&shared, &zoom, &account, &credentials, margin, lock_ttl)
                            .await
                    }
                    None => zoom.fetch_s2s_token(&account, &credentials).await,
                };
                // A reload may have replaced the credentials while this fetch ran: its token
                // still answers the callers waiting on it, but is not kept.
                let still_current = current
                    .load()
                    .get(&account)
                    .is_some_and(|now| Arc::ptr_eq(now, &credentials));
                let mut slots = slots.lock().unwrap_or_else(|p| p.into_inner());
                let slot = slots.entry(account.clone()).or_default();
                match result {
                    Ok(token) => {
                        let token = Arc::new(token);
                        tracing::info!(account, expires_in_s = token.lifetime.as_secs(), "fetched a Server-to-Server access token");
                        if still_current {
                            slot.token = Some(Arc::clone(&token));
                            slot.quiet_until = None;
                        }
                        Ok(token)
                    }
                    Err(error) => {
                        tracing::warn!(account, %error, "cannot fetch a Server-to-Server access token");
                        slot.quiet_until = Some(Instant::now() + REFRESH_RETRY_PAUSE);
                        Err(error)
                    }
                }
            }
        })
    }
}

/// Each account's S2S credentials, shared so a fetch can tell whether they are still current.
fn credentials_of(accounts: &BTreeMap<String, Account>) -> HashMap<String, Arc<S2sCredentials>> {
    accounts
        .iter()
        .filter_map(|(name, account)| Some((name.clone(), Arc::new(account.s2s.clone()?))))
        .collect()
}

/// Whether a token has more than the refresh margin left (capped at half its life).
fn fresh(token: &S2sToken, margin: Duration) -> bool {
    Instant::now() + margin.min(token.lifetime / 2) < token.expires
}

/// A token through Redis: one another replica published, or one fetched under the shared lock
/// and published. Without Redis, straight from Zoom.
async fn fetch_shared(
    shared: &SharedTokens,
    zoom: &ZoomClient,
    account: &str,
    credentials: &S2sCredentials,
    margin: Duration,
    lock_ttl: Duration,
) -> Result<S2sToken, ZoomError> {
    let owner = uuid::Uuid::new_v4().to_string();
    // A holder that died leaves its lock for at most `lock_ttl`; waiting a little longer lets
    // this replica take over.
    let give_up = Instant::now() + lock_ttl + Duration::from_secs(2);
    loop {
        let Ok(published) = shared.read(account).await else {
            return zoom.fetch_s2s_token(account, credentials).await;
        };
        if let Some(token) = published.filter(|t| fresh(t, margin)) {
            return Ok(token);
        }
        let Ok(locked) = shared.try_lock(account, &owner, lock_ttl).await else {
            return zoom.fetch_s2s_token(account, credentials).await;
        };
        if locked {
            // Another replica may have published between the read and the lock.
            if let Ok(Some(token)) = shared.read(account).await
                && fresh(&token, margin)
            {
                shared.unlock(account, &owner).await;
                return Ok(token);
            }
            let result = zoom.fetch_s2s_token(account, credentials).await;
            if let Ok(token) = &result {
                let _ = shared.publish(account, token).await;
            }
            shared.unlock(account, &owner).await;
            return result;
        }
        if Instant::now() > give_up {
            return Err(ZoomError::Unavailable {
                reason: "another replica has been fetching the token for too long".into(),
                retry_after: Some(1),
            });
        }
        tokio::time::sleep(SHARED_POLL).await;
    }
}

/// A token is handed out only while a little of it remains, so it does not expire on its way
/// to Zoom: 5 s, or an eighth of its life when that is shorter.
fn usable(token: &S2sToken, now: Instant) -> bool {
    let safety = Duration::from_secs(5).min(token.lifetime / 8);
    now + safety < token.expires
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::{Emulator, EmulatorAccount};

    async fn cache_on(zoom: &Emulator) -> TokenCache {
        zoom.add_account(EmulatorAccount {
            account_id: "acc".into(),
            client_id: "cid".into(),
            client_secret: "csecret".into(),
        });
        let settings = Settings::from_toml(&format!(
            "[zoom]\noauth_url = \"{}\"\napi_url = \"{}\"\n\
             [accounts.prod.s2s]\naccount_id = \"acc\"\nclient_id = \"cid\"\nclient_secret = \"csecret\"\n",
            zoom.base_url(),
            zoom.api_url()
        ))
        .unwrap();
        let client = Arc::new(ZoomClient::new(&settings.zoom, &settings.accounts).unwrap());
        TokenCache::new(client, &settings, None)
    }

    #[tokio::test]
    async fn a_caller_who_asks_for_a_fetch_just_after_one_ended_gets_its_token() {
        let zoom = Emulator::start().await.unwrap();
        let cache = cache_on(&zoom).await;
        let first = cache.get("prod").await.unwrap();
        assert_eq!(zoom.token_requests_for("acc"), 1);

        // What a caller does who found the slot empty while the first fetch ran and reaches
        // the single flight after it ended (a preempted thread, a loaded machine).
        let late = cache.fetch("prod", &Span::none()).await.unwrap();
        assert!(Arc::ptr_eq(&late, &first));
        assert_eq!(zoom.token_requests_for("acc"), 1, "no second fetch");

        // A token Zoom refused is dropped, and then a fetch does go to Zoom.
        cache.invalidate("prod", &first).await;
        let next = cache.get("prod").await.unwrap();
        assert!(!Arc::ptr_eq(&next, &first));
        assert_eq!(zoom.token_requests_for("acc"), 2);
    }

    #[tokio::test]
    async fn a_refresh_of_a_token_due_for_it_still_goes_to_zoom() {
        let zoom = Emulator::start().await.unwrap();
        // Tokens of 2 s are due for refresh once less than half their life remains.
        zoom.set_token_lifetime(2);
        let cache = cache_on(&zoom).await;
        let first = cache.get("prod").await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let refreshed = cache.fetch("prod", &Span::none()).await.unwrap();
        assert!(!Arc::ptr_eq(&refreshed, &first));
        assert_eq!(zoom.token_requests_for("acc"), 2);
    }
}
