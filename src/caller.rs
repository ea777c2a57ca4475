//! Who is calling: the `Caller` extractor authenticates an API key against an in-memory copy
//! of the clients table (the hot path never touches the database) and answers scope and
//! account questions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use crate::api_key;
use crate::app::AppState;
use crate::clock;
use crate::error::{ApiError, ErrorCode};
use crate::scope::Scope;
use crate::settings::{Account, Settings};
use crate::store::{Store, StoreError};

/// An API client as held in memory for authentication.
struct KnownClient {
    name: Arc<str>,
    hash: [u8; 32],
    scopes: Arc<[Scope]>,
    account: Option<Arc<str>>,
    expires_at: Option<i64>,
    revoked: bool,
}

/// The clients table, copied into memory and re-read every `auth.key_refresh_seconds`, so a
/// key created, rotated or revoked anywhere (another replica, the CLI) takes effect here
/// within that time. If the store cannot be read, the last copy keeps serving.
pub struct KeyRing {
    by_lookup: ArcSwap<HashMap<String, KnownClient>>,
}

impl KeyRing {
    pub async fn load(store: &dyn Store) -> Result<Self, StoreError> {
        let ring = Self {
            by_lookup: ArcSwap::from_pointee(HashMap::new()),
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
                    name: c.name.into(),
                    hash,
                    scopes: c.scopes.into(),
                    account: c.account.map(Into::into),
                    expires_at: c.expires_at,
                    revoked: c.revoked_at.is_some(),
                },
            );
        }
        self.by_lookup.store(Arc::new(map));
        Ok(())
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
    pub fn authenticate(&self, presented: &str, now: i64) -> Result<Caller, ApiError> {
        let unknown = || ApiError::unauthenticated("unknown API key");
        let lookup = api_key::lookup_of(presented).ok_or_else(unknown)?;
        let clients = self.by_lookup.load();
        let client = clients.get(lookup).ok_or_else(unknown)?;
        if !api_key::matches(presented, &client.hash) {
            return Err(unknown());
        }
        if client.revoked {
            return Err(ApiError::unauthenticated("API key has been revoked"));
        }
        if client.expires_at.is_some_and(|at| at <= now) {
            return Err(ApiError::unauthenticated("API key has expired"));
        }
        Ok(Caller {
            name: Arc::clone(&client.name),
            scopes: Arc::clone(&client.scopes),
            account: client.account.clone(),
        })
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: Arc<str>,
    scopes: Arc<[Scope]>,
    /// `None`: may name any configured account.
    account: Option<Arc<str>>,
}

impl Caller {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        match self.has(scope) {
            true => Ok(()),
            false => Err(ApiError::forbidden(format!(
                "this caller lacks the `{scope}` scope"
            ))),
        }
    }

    /// The account to act for: the one `requested` (if the caller may use it), else the one
    /// the caller is bound to, else the only one configured.
    pub fn account<'s>(
        &self,
        settings: &'s Settings,
        requested: Option<&str>,
    ) -> Result<&'s Account, ApiError> {
        let name = match (requested, self.account.as_deref()) {
            (Some(asked), Some(bound)) if asked != bound => {
                return Err(ApiError::forbidden(format!(
                    "this caller is bound to account `{bound}`"
                )));
            }
            (Some(name), _) | (None, Some(name)) => name,
            (None, None) => {
                return settings
                    .sole_account()
                    .ok_or_else(|| match settings.accounts.len() {
                        0 => ApiError::not_found("no accounts are configured"),
                        _ => ApiError::invalid(
                            "account",
                            format!(
                                "required: name one of {}",
                                settings
                                    .accounts
                                    .keys()
                                    .cloned()
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        ),
                    });
            }
        };
        settings
            .accounts
            .get(name)
            .ok_or_else(|| ApiError::not_found(format!("account `{name}` is not configured")))
    }
}

/// The credential a request presents: `Authorization: Bearer …` or `X-Api-Key: …`.
fn presented_key(headers: &HeaderMap) -> Result<&str, ApiError> {
    let malformed = || ApiError::unauthenticated("Authorization must be `Bearer <key>`");
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| malformed())?;
        let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(malformed());
        }
        return Ok(token.trim());
    }
    if let Some(value) = headers.get("x-api-key") {
        return value
            .to_str()
            .map(str::trim)
            .map_err(|_| ApiError::unauthenticated("X-Api-Key is not a valid key"));
    }
    Err(ApiError::new(
        ErrorCode::Unauthenticated,
        "credentials required: send `Authorization: Bearer ztv_…` or `X-Api-Key: ztv_…`",
    ))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = presented_key(&parts.headers)?;
        if !api_key::looks_like_key(presented) {
            return Err(ApiError::unauthenticated(
                "not a ztv API key (keys start with `ztv_`)",
            ));
        }
        let caller = state.keys.authenticate(presented, clock::now())?;
        tracing::Span::current().record("caller", &*caller.name);
        Ok(caller)
    }
}
