//! Who is calling: an API key, authenticated against an in-memory copy of the clients table
//! (the hot path never touches the database), or an end user whose JWT the identity
//! provider's keys verified; a caller answers scope, account, budget and "acting for whom"
//! questions. (The request extractor that makes one is `http::extract`'s.)

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::audit::AuditFacts;
use crate::auth::end_users::EndUser;
use crate::auth::keys;
use crate::auth::rate_limit::{Budget, Limit};
use crate::config::{Account, EndUserSettings, RateLimitSettings, Settings};
use crate::scope::Scope;
use crate::store::{Store, StoreError};
use crate::zoom_user::ZoomUser;
use arc_swap::ArcSwap;

/// Why a caller is refused: who they are, or what they asked for.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("end users may only fetch tokens for themselves (`me`)")]
    NotYourself,
    #[error("this caller lacks the `{0}` scope")]
    MissingScope(Scope),
    #[error("this caller is bound to account `{0}`")]
    BoundElsewhere(String),
    #[error("no accounts are configured")]
    NoAccounts,
    /// No account named where several are configured; lists them.
    #[error("required: name one of {0}")]
    AccountRequired(String),
    #[error("account `{0}` is not configured")]
    UnknownAccount(String),
}

/// An API client as held in memory for authentication.
struct KnownClient {
    name: Arc<str>,
    /// What the rate limiter counts this client under: `key:<name>`.
    rate_key: Arc<str>,
    hash: [u8; 32],
    scopes: Arc<[Scope]>,
    account: Option<Arc<str>>,
    expires_at: Option<i64>,
    revoked: bool,
    rate_limit: Option<Limit>,
    /// What its Zoom calls are counted under: `upstream:key:<name>`.
    upstream_key: Arc<str>,
    /// Own budget of Zoom calls a minute; `None`: the configured default.
    upstream_per_minute: Option<u32>,
}

/// The clients table, copied into memory and re-read every `auth.key_refresh_seconds`, so a
/// key created, rotated or revoked anywhere (another replica, the CLI) takes effect here
/// within that time. If the store cannot be read, the last copy keeps serving.
pub struct KeyRing {
    by_lookup: ArcSwap<HashMap<String, KnownClient>>,
    /// Copies taken from the store so far (`ztv_api_key_refreshes_total`).
    refreshes: AtomicU64,
}

impl KeyRing {
    pub async fn load(store: &dyn Store) -> Result<Self, StoreError> {
        let ring = Self {
            by_lookup: ArcSwap::from_pointee(HashMap::new()),
            refreshes: AtomicU64::new(0),
        };
        ring.refresh(store).await?;
        Ok(ring)
    }

    pub async fn refresh(&self, store: &dyn Store) -> Result<(), StoreError> {
        let clients = store.list_clients().await?;
        let mut map = HashMap::with_capacity(clients.len());
        for c in clients {
            let Some(hash) = hex::decode(&c.key_hash)
                .ok()
                .and_then(|h| <[u8; 32]>::try_from(h).ok())
            else {
                tracing::warn!(client = %c.name, "stored key hash is malformed; client ignored");
                continue;
            };
            map.insert(
                c.key_lookup,
                KnownClient {
                    rate_key: format!("key:{}", c.name).into(),
                    upstream_key: format!("upstream:key:{}", c.name).into(),
                    name: c.name.into(),
                    hash,
                    scopes: c.scopes.into(),
                    account: c.account.map(Into::into),
                    expires_at: c.expires_at,
                    revoked: c.revoked_at.is_some(),
                    rate_limit: c
                        .rate_limit
                        .map(|(per_second, burst)| Limit::per_second(per_second, burst)),
                    upstream_per_minute: c.upstream_per_minute,
                },
            );
        }
        self.by_lookup.store(Arc::new(map));
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("ztv_api_key_refreshes_total").increment(1);
        Ok(())
    }

    /// How many times the clients table has been read so far. A change to the table made
    /// before a refresh started is in force once that refresh is counted: two counts after
    /// the change, a refresh that was already reading cannot hide it.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// Re-reads the clients every `every` until the process ends.
    pub fn spawn_refresher(self: &Arc<Self>, store: Arc<dyn Store>, every: Duration) {
        let ring = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                ticker.tick().await;
                match ring.refresh(store.as_ref()).await {
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!("API keys are being read from the store again");
                    }
                    Ok(()) => {}
                    Err(error) if !failing => {
                        failing = true;
                        tracing::warn!(%error, "cannot re-read API keys; serving the last copy");
                    }
                    Err(_) => {}
                }
            }
        });
    }

    /// The caller a presented key belongs to.
    pub fn authenticate(&self, presented: &str, now: i64) -> Result<Caller, AuthError> {
        let unknown = || AuthError::Unauthenticated("unknown API key");
        let lookup = keys::lookup_of(presented).ok_or_else(unknown)?;
        let clients = self.by_lookup.load();
        let client = clients.get(lookup).ok_or_else(unknown)?;
        if !keys::matches(presented, &client.hash) {
            return Err(unknown());
        }
        if client.revoked {
            return Err(AuthError::Unauthenticated("API key has been revoked"));
        }
        if client.expires_at.is_some_and(|at| at <= now) {
            return Err(AuthError::Unauthenticated("API key has expired"));
        }
        Ok(Caller {
            name: Arc::clone(&client.name),
            rate_key: Arc::clone(&client.rate_key),
            scopes: Arc::clone(&client.scopes),
            account: client.account.clone(),
            end_user: None,
            rate_limit: client.rate_limit,
            upstream_key: Arc::clone(&client.upstream_key),
            upstream_per_minute: client.upstream_per_minute,
        })
    }
}

/// An authenticated caller: an API client, or a signed-in end user.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The client's name, or the end user's subject.
    pub name: Arc<str>,
    /// The key the rate limiter counts this caller under: `key:<name>` for an API key,
    /// `user:<subject>` for an end user, so the two never share a budget. An API key's is
    /// made once, when the key ring is read, not per request.
    rate_key: Arc<str>,
    scopes: Arc<[Scope]>,
    /// `None`: may name any configured account.
    account: Option<Arc<str>>,
    /// `Some(me)` for an end user: the Zoom user they are, and the only one they act for.
    end_user: Option<ZoomUser>,
    /// Own limit; `None`: the configured default.
    rate_limit: Option<Limit>,
    /// What the upstream budget counts this caller's Zoom calls under: `upstream:` and the
    /// rate key.
    upstream_key: Arc<str>,
    /// Own budget of Zoom calls a minute; `None`: the configured default.
    upstream_per_minute: Option<u32>,
}

impl Caller {
    /// The end user's Zoom identity (`me`), if the caller is an end user.
    pub fn end_user(&self) -> Option<&ZoomUser> {
        self.end_user.as_ref()
    }

    /// The Zoom user to act for when `user` is asked: an API key acts for anyone (its scopes
    /// say for what); an end user only for themselves, as `me` or by their own identity
    /// (compared as [`ZoomUser`]s), which is then what Zoom is asked about.
    pub fn act_as(&self, user: &ZoomUser) -> Result<ZoomUser, AuthError> {
        match &self.end_user {
            None => Ok(user.clone()),
            Some(me) if user.is_me() || user == me => Ok(me.clone()),
            Some(_) => Err(AuthError::NotYourself),
        }
    }

    /// The budget of Zoom calls this caller's requests may cause.
    pub fn upstream_budget(&self, settings: &Settings) -> Budget {
        Budget {
            key: Arc::clone(&self.upstream_key),
            limit: Limit::per_minute(
                self.upstream_per_minute
                    .unwrap_or(settings.rate_limit.upstream_per_minute),
            ),
        }
    }

    /// What this caller's audit event starts with: its name.
    pub fn audit_facts(&self) -> AuditFacts {
        AuditFacts {
            api_client: self.end_user.is_none(),
            ..AuditFacts::by(Arc::clone(&self.name))
        }
    }

    /// The one account the caller may name, if it is bound to one.
    pub fn bound_account(&self) -> Option<&str> {
        self.account.as_deref()
    }

    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    pub fn require(&self, scope: Scope) -> Result<(), AuthError> {
        match self.has(scope) {
            true => Ok(()),
            false => Err(AuthError::MissingScope(scope)),
        }
    }

    /// The account to act for: the one `requested` (if the caller may use it), else the one
    /// the caller is bound to, else the only one configured.
    pub fn account<'s>(
        &self,
        settings: &'s Settings,
        requested: Option<&str>,
    ) -> Result<&'s Account, AuthError> {
        self.resolve_account(settings, requested)
    }

    fn resolve_account<'s>(
        &self,
        settings: &'s Settings,
        requested: Option<&str>,
    ) -> Result<&'s Account, AuthError> {
        let name = match (requested, self.account.as_deref()) {
            (Some(asked), Some(bound)) if asked != bound => {
                return Err(AuthError::BoundElsewhere(bound.to_string()));
            }
            (Some(name), _) | (None, Some(name)) => name,
            (None, None) => {
                return settings
                    .sole_account()
                    .ok_or_else(|| match settings.accounts.len() {
                        0 => AuthError::NoAccounts,
                        _ => AuthError::AccountRequired(
                            settings
                                .accounts
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", "),
                        ),
                    });
            }
        };
        settings
            .accounts
            .get(name)
            .ok_or_else(|| AuthError::UnknownAccount(name.to_string()))
    }

    /// A signed-in end user, as verified: bound to `end_users.account`, else to `sole_account`.
    pub fn end_user_from(
        user: EndUser,
        end_users: &EndUserSettings,
        sole_account: Option<&str>,
    ) -> Caller {
        Caller {
            rate_key: format!("user:{}", user.subject).into(),
            upstream_key: format!("upstream:user:{}", user.subject).into(),
            upstream_per_minute: None,
            name: user.subject.into(),
            scopes: end_users.scopes.clone().into(),
            account: end_users
                .account
                .as_deref()
                .or(sole_account)
                .map(Into::into),
            end_user: Some(user.me),
            rate_limit: None,
        }
    }

    /// What this caller's requests are counted under, and against which limit (its own, else
    /// `default`).
    pub fn request_budget(&self, default: &RateLimitSettings) -> Budget {
        Budget {
            key: Arc::clone(&self.rate_key),
            limit: self
                .rate_limit
                .unwrap_or_else(|| Limit::per_second(default.requests_per_second, default.burst)),
        }
    }
}
