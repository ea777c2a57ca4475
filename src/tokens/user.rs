//! ZAK and On-Behalf-Of tokens: fetched from Zoom with the user's own grant or the account's
//! S2S token, retried once with a fresh token when Zoom refuses the one used.
//!
//! A ZAK is fetched once for all concurrent callers and reused for a while per (account,
//! user). An OBF token is single-use at Zoom: every request mints its own, and none is ever
//! cached, shared or handed to a second caller. Each fetch is charged to the asking caller's
//! upstream budget first, so no one caller can spend the account's Zoom rate limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::Instrument;

use crate::auth::rate_limit::{Budget, Decision, RateLimiter};
use crate::clock;
use crate::flight::SingleFlight;
use crate::grants::{Deleted, GrantError, UserGrants};
use crate::store::GrantKind;
use crate::tokens::s2s::TokenCache;
use crate::zoom::{Acting, UserToken, UserTokenKind, ZoomClient, ZoomError};
use crate::zoom_user::{ZoomAccountId, ZoomUser};

/// A cached ZAK's key: the account and the user's folded identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    account: String,
    user: Arc<str>,
}

struct Entry {
    token: UserToken,
    reuse_until: Instant,
}

/// The cached ZAKs, bounded.
struct ZakCache {
    entries: HashMap<Key, Entry>,
    /// Entries kept at most.
    capacity: usize,
}

pub struct UserTokens {
    zoom: Arc<ZoomClient>,
    s2s: Arc<TokenCache>,
    /// Users' own grants, when any account has `user_oauth`.
    grants: Option<Arc<UserGrants>>,
    /// Counts each caller's Zoom calls against its budget.
    limiter: Arc<RateLimiter>,
    /// Longest reuse of one ZAK; zero turns reuse off.
    reuse: Duration,
    /// Shared with the fetches, which fill it before their flight ends.
    cache: Arc<Mutex<ZakCache>>,
    /// One fetch per ZAK, asked life and named install at a time.
    flights: SingleFlight<(Key, Option<u32>, Option<ZoomAccountId>), UserToken, ZoomError>,
}

impl UserTokens {
    pub fn new(
        zoom: Arc<ZoomClient>,
        s2s: Arc<TokenCache>,
        grants: Option<Arc<UserGrants>>,
        limiter: Arc<RateLimiter>,
        reuse: Duration,
        capacity: usize,
    ) -> Self {
        Self {
            zoom,
            s2s,
            grants,
            limiter,
            reuse,
            cache: Arc::new(Mutex::new(ZakCache {
                entries: HashMap::new(),
                capacity: capacity.max(1),
            })),
            flights: SingleFlight::default(),
        }
    }

    /// The ZAK or a new OBF token of `user` in `account`, for a caller with `budget`; through
    /// the account install of `zoom_account` when one is named.
    pub async fn get(
        &self,
        account: &str,
        user: &ZoomUser,
        zoom_account: Option<&ZoomAccountId>,
        kind: UserTokenKind,
        budget: &Budget,
    ) -> Result<UserToken, ZoomError> {
        if matches!(kind, UserTokenKind::OnBehalf { .. }) {
            self.charge(budget).await?;
            return fetch_either(
                &self.zoom,
                &self.s2s,
                self.grants.as_deref(),
                account,
                user,
                zoom_account,
                &kind,
            )
            .await;
        }
        // A named install must exist even when the user's ZAK is cached.
        if let Some(id) = zoom_account {
            let installed = match &self.grants {
                Some(grants) => grants.is_installed(account, id).await?,
                None => false,
            };
            if !installed {
                return Err(ZoomError::NotInstalled(id.as_str().to_string()));
            }
        }
        let key = Key {
            account: account.to_string(),
            user: user.shared_key(),
        };
        let ttl = kind.ttl();
        let look = super::cache_span("zak");
        let hit = cached(&self.cache, &key, ttl);
        look.record("ztv.cache.hit", hit.is_some());
        if let Some(token) = hit {
            return Ok(token);
        }
        let flight = (key.clone(), ttl, zoom_account.cloned());
        // Only a caller who would start a fetch is charged; one joining a fetch under way
        // costs Zoom nothing.
        if !self.flights.in_flight(&flight) {
            self.charge(budget).await?;
        }
        let zoom = Arc::clone(&self.zoom);
        let s2s = Arc::clone(&self.s2s);
        let grants = self.grants.clone();
        let (cache, reuse) = (Arc::clone(&self.cache), self.reuse);
        let user = user.clone();
        let zoom_account = zoom_account.cloned();
        self.flights
            .traced(&flight, "zak", || {
                let key = key.clone();
                async move {
                    // A flight that ended between this caller's look and the start of this
                    // one has cached its token (below): use it rather than fetch again.
                    if let Some(token) = cached(&cache, &key, ttl) {
                        return Ok(token);
                    }
                    let token = fetch_either(
                        &zoom,
                        &s2s,
                        grants.as_deref(),
                        &key.account,
                        &user,
                        zoom_account.as_ref(),
                        &kind,
                    )
                    .await?;
                    // Inside the flight, so a caller who comes after it ends finds the token.
                    // (Remembered by the waiters instead, a caller slipping in between the
                    // flight's end and their `remember` started a second fetch.)
                    remember(&cache, reuse, key, &token);
                    Ok(token)
                }
            })
            .instrument(look)
            .await
    }

    /// Counts one Zoom call against the caller's budget, or refuses it before Zoom is asked.
    async fn charge(&self, budget: &Budget) -> Result<(), ZoomError> {
        match self
            .limiter
            .check(Arc::clone(&budget.key), budget.limit)
            .await
        {
            Decision::Allowed => Ok(()),
            Decision::Limited { retry_after } => Err(ZoomError::CallerBudgetSpent {
                limit: budget.limit.to_string(),
                retry_after: retry_after.as_secs_f64().ceil().max(1.0) as u64,
            }),
        }
    }

    /// Deletes `user`'s grant in `account` and forgets every cached token of theirs. A
    /// disconnect asked by a caller (`revoke`: their budget, charged for the call) revokes the
    /// grant at Zoom first; one Zoom announced (`app_deauthorized`) does not. `by` is the
    /// caller, if any; `None` when there was no grant.
    pub async fn forget_grant(
        &self,
        account: &str,
        user: &ZoomUser,
        revoke: Option<&Budget>,
        by: Option<Arc<str>>,
    ) -> Result<Option<Deleted>, GrantError> {
        self.forget_user(account, user);
        let Some(grants) = &self.grants else {
            return Ok(None);
        };
        if let Some(budget) = revoke {
            self.charge(budget).await?;
        }
        let Some(deleted) = grants.delete(account, user, revoke.is_some(), by).await? else {
            return Ok(None);
        };
        for identity in &deleted.identities {
            self.forget_user(account, identity);
        }
        Ok(Some(deleted))
    }

    /// Deletes the account install of `zoom_account` in `account` when `installer` made it
    /// (Zoom announced they removed the app), and forgets the account's cached tokens;
    /// whether there was one.
    pub async fn forget_install(
        &self,
        account: &str,
        zoom_account: &ZoomAccountId,
        installer: &ZoomUser,
    ) -> Result<bool, GrantError> {
        let Some(grants) = &self.grants else {
            return Ok(false);
        };
        let deleted = grants
            .delete_install(account, zoom_account, installer, None)
            .await?;
        if deleted {
            self.forget_account(account);
        }
        Ok(deleted)
    }

    /// Forgets every cached token of `user` (grant made or deleted, user deauthorised).
    pub fn forget_user(&self, account: &str, user: &ZoomUser) {
        self.lock()
            .entries
            .retain(|key, _| !(key.account == account && *key.user == *user.key()));
    }

    /// Forgets every cached token of `account` (its credentials changed).
    pub fn forget_account(&self, account: &str) {
        self.lock().entries.retain(|key, _| key.account != account);
    }

    /// ZAKs cached now.
    pub fn cached_len(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ZakCache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The token cached for `key`, while it may still be reused and, when a life was asked
/// (`ttl`, seconds), while that much of its life remains.
fn cached(cache: &Mutex<ZakCache>, key: &Key, ttl: Option<u32>) -> Option<UserToken> {
    let cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    let entry = cache.entries.get(key)?;
    let covers = ttl.is_none_or(|ttl| entry.token.expires_at - clock::now() >= i64::from(ttl));
    (entry.reuse_until > Instant::now() && covers).then(|| entry.token.clone())
}

/// Keeps a token for `reuse`, but never past half of what remains of its life, so a reused
/// token always has most of its life ahead. A full cache first drops what may no longer be
/// reused, then, if still full, the entry whose reuse ends soonest.
fn remember(cache: &Mutex<ZakCache>, reuse: Duration, key: Key, token: &UserToken) {
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
    if cache.entries.len() >= cache.capacity && !cache.entries.contains_key(&key) {
        cache.entries.retain(|_, entry| entry.reuse_until > now);
        if cache.entries.len() >= cache.capacity
            && let Some(soonest) = cache
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.reuse_until)
                .map(|(key, _)| key.clone())
        {
            cache.entries.remove(&soonest);
        }
    }
    cache.entries.insert(
        key,
        Entry {
            token: token.clone(),
            reuse_until: now + keep,
        },
    );
}

/// Through the account install of `zoom_account` when one is named; else with the user's own
/// grant when they have one in `account` (or, when Zoom refused it, their Zoom account's
/// install); else with the account's S2S token.
async fn fetch_either(
    zoom: &ZoomClient,
    s2s: &TokenCache,
    grants: Option<&UserGrants>,
    account: &str,
    user: &ZoomUser,
    zoom_account: Option<&ZoomAccountId>,
    kind: &UserTokenKind,
) -> Result<UserToken, ZoomError> {
    let not_installed = |id: &ZoomAccountId| ZoomError::NotInstalled(id.as_str().to_string());
    let Some(grants) = grants else {
        return match zoom_account {
            Some(id) => Err(not_installed(id)),
            None => fetch(zoom, s2s, account, user.as_str(), kind).await,
        };
    };
    if let Some(id) = zoom_account {
        let access = grants
            .account_access(account, id)
            .await?
            .ok_or_else(|| not_installed(id))?;
        return fetch_with_grant(zoom, grants, account, access, user.as_str(), kind).await;
    }
    match grants.access_for(account, user).await {
        Ok(Some(access)) => {
            let own = access.zoom_user_id.clone();
            fetch_with_grant(zoom, grants, account, access, &own, kind).await
        }
        Ok(None) => fetch(zoom, s2s, account, user.as_str(), kind).await,
        Err(GrantError::ReauthorizationRequired) => {
            // Their own grant is gone at Zoom; their account's install still acts for them.
            let Some(id) = grants.zoom_account_of(account, user).await? else {
                return Err(ZoomError::ReauthorizationRequired);
            };
            match grants.account_access(account, &id).await? {
                Some(access) => {
                    fetch_with_grant(zoom, grants, account, access, user.as_str(), kind).await
                }
                None => Err(ZoomError::ReauthorizationRequired),
            }
        }
        Err(other) => Err(other.into()),
    }
}

/// With a grant's token (the user's own, or an account install's for `user`); one refresh
/// and retry when Zoom refuses it.
async fn fetch_with_grant(
    zoom: &ZoomClient,
    grants: &UserGrants,
    account: &str,
    access: crate::grants::UserAccess,
    user: &str,
    kind: &UserTokenKind,
) -> Result<UserToken, ZoomError> {
    let acting = match access.kind {
        GrantKind::User => Acting::User,
        GrantKind::Account => Acting::AccountGrant,
    };
    match zoom
        .user_token_as(account, &access.access_token, user, kind, acting)
        .await
    {
        Err(ZoomError::TokenRejected(_)) => {
            let fresh = grants.replace_refused(account, &access).await?;
            zoom.user_token_as(account, &fresh.access_token, user, kind, acting)
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
