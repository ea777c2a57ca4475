//! ZAK and On-Behalf-Of tokens: fetched from Zoom with the account's S2S token (once for
//! all concurrent callers), retried once with a fresh S2S token when Zoom refuses the cached
//! one, and reused for a while per (account, user[, meeting]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock;
use crate::flight::SingleFlight;
use crate::grants::UserGrants;
use crate::token_cache::TokenCache;
use crate::zoom::{Acting, UserToken, UserTokenKind, ZoomClient, ZoomError};

/// Entries kept before expired ones are swept.
const SWEEP_ABOVE: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    account: String,
    /// Lower-cased: emails are case-insensitive at Zoom.
    user: String,
    kind: UserTokenKind,
}

struct Entry {
    token: UserToken,
    reuse_until: Instant,
}

pub struct UserTokens {
    zoom: Arc<ZoomClient>,
    s2s: Arc<TokenCache>,
    /// Users' own grants, when any account has `user_oauth`.
    grants: Option<Arc<UserGrants>>,
    /// Longest reuse of one token; zero turns reuse off.
    reuse: Duration,
    /// Shared with the fetches, which fill it before their flight ends.
    cache: Arc<Mutex<HashMap<Key, Entry>>>,
    flights: SingleFlight<Key, UserToken, ZoomError>,
}

impl UserTokens {
    pub fn new(
        zoom: Arc<ZoomClient>,
        s2s: Arc<TokenCache>,
        grants: Option<Arc<UserGrants>>,
        reuse: Duration,
    ) -> Self {
        Self {
            zoom,
            s2s,
            grants,
            reuse,
            cache: Arc::default(),
            flights: SingleFlight::default(),
        }
    }

    /// The ZAK or OBF token of `user` in `account`.
    pub async fn get(
        &self,
        account: &str,
        user: &str,
        kind: UserTokenKind,
    ) -> Result<UserToken, ZoomError> {
        let key = Key {
            account: account.to_string(),
            user: user.to_lowercase(),
            kind,
        };
        if let Some(token) = cached(&self.cache, &key) {
            return Ok(token);
        }
        let zoom = Arc::clone(&self.zoom);
        let s2s = Arc::clone(&self.s2s);
        let grants = self.grants.clone();
        let (cache, reuse) = (Arc::clone(&self.cache), self.reuse);
        let user = user.to_string();
        self.flights
            .join_or_start(&key, || {
                let key = key.clone();
                async move {
                    // A flight that ended between this caller's look and the start of this
                    // one has cached its token (below): use it rather than fetch again.
                    if let Some(token) = cached(&cache, &key) {
                        return Ok(token);
                    }
                    let access = match &grants {
                        Some(grants) => grants.access_for(&key.account, &user).await?,
                        None => None,
                    };
                    let token = match (&grants, access) {
                        (Some(grants), Some(access)) => {
                            fetch_as_user(&zoom, grants, &key.account, access, &key.kind).await?
                        }
                        _ => fetch(&zoom, &s2s, &key.account, &user, &key.kind).await?,
                    };
                    // Inside the flight, so a caller who comes after it ends finds the token.
                    // (Remembered by the waiters instead, a caller slipping in between the
                    // flight's end and their `remember` started a second fetch.)
                    remember(&cache, reuse, key, &token);
                    Ok(token)
                }
            })
            .await
    }

    /// Forgets every cached token of `user` (grant deleted, user deauthorised).
    pub fn forget_user(&self, account: &str, user: &str) {
        let user = user.to_lowercase();
        self.lock()
            .retain(|key, _| !(key.account == account && key.user == user));
    }

    /// Forgets every cached token of `account` (its credentials changed).
    pub fn forget_account(&self, account: &str) {
        self.lock().retain(|key, _| key.account != account);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The token cached for `key`, while it may still be reused.
fn cached(cache: &Mutex<HashMap<Key, Entry>>, key: &Key) -> Option<UserToken> {
    let cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    let entry = cache.get(key)?;
    (entry.reuse_until > Instant::now()).then(|| entry.token.clone())
}

/// Keeps a token for `reuse`, but never past half of what remains of its life, so a reused
/// token always has most of its life ahead.
fn remember(cache: &Mutex<HashMap<Key, Entry>>, reuse: Duration, key: Key, token: &UserToken) {
    if reuse.is_zero() {
        return;
    }
    let left = (token.expires_at - clock::now()).max(0) as u64;
    let keep = reuse.min(Duration::from_secs(left / 2));
    if keep.is_zero() {
        return;
    }
    let now = Instant::now();
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    if cache.len() >= SWEEP_ABOVE {
        cache.retain(|_, entry| entry.reuse_until > now);
    }
    cache.insert(
        key,
        Entry {
            token: token.clone(),
            reuse_until: now + keep,
        },
    );
}

/// With the user's own token; one refresh and retry when Zoom refuses it.
async fn fetch_as_user(
    zoom: &ZoomClient,
    grants: &UserGrants,
    account: &str,
    access: crate::grants::UserAccess,
    kind: &UserTokenKind,
) -> Result<UserToken, ZoomError> {
    let user = access.zoom_user_id.clone();
    match zoom
        .user_token_as(account, &access.access_token, &user, kind, Acting::User)
        .await
    {
        Err(ZoomError::TokenRejected(_)) => {
            let fresh = grants.replace_refused(account, &access).await?;
            zoom.user_token_as(account, &fresh.access_token, &user, kind, Acting::User)
                .await
        }
        other => other,
    }
}

/// One fetch, and at most one retry after Zoom refuses the cached S2S token.
async fn fetch(
    zoom: &ZoomClient,
    s2s: &TokenCache,
    account: &str,
    user: &str,
    kind: &UserTokenKind,
) -> Result<UserToken, ZoomError> {
    let access = s2s.get(account).await?;
    match zoom
        .user_token(account, &access.access_token, user, kind)
        .await
    {
        Err(ZoomError::TokenRejected(_)) => {
            s2s.invalidate(account, &access).await;
            let fresh = s2s.get(account).await?;
            zoom.user_token(account, &fresh.access_token, user, kind)
                .await
        }
        other => other,
    }
}
