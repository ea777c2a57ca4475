//! Managing API clients: creating, rotating and revoking keys. Used by the CLI and `ztv dev`.

use std::time::Duration;

use crate::auth::keys::{self, NewKey};
use crate::clock;
use crate::config::Settings;
use crate::scope::Scope;
use crate::store::{ClientRecord, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("client name must be 1–64 characters of letters, digits, '.', '_' or '-'")]
    BadName,
    #[error("at least one --scope is required")]
    NoScopes,
    #[error("account `{0}` is not configured")]
    UnknownAccount(String),
    #[error("--expires-in must be at least one second")]
    BadExpiry,
    #[error("no live client named `{0}`")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a new client may do.
pub struct NewClient<'a> {
    pub name: &'a str,
    pub scopes: Vec<Scope>,
    pub account: Option<String>,
    pub expires_in: Option<Duration>,
    /// Own rate limit (requests per second, burst); `None`: the configured default.
    pub rate_limit: Option<(u32, u32)>,
    /// Own budget of Zoom calls a minute; `None`: the configured default.
    pub upstream_per_minute: Option<u32>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Creates a client and its key; the key is returned once and never stored.
pub async fn create(
    store: &dyn Store,
    settings: &Settings,
    new: NewClient<'_>,
) -> Result<(ClientRecord, NewKey), ClientError> {
    if !valid_name(new.name) {
        return Err(ClientError::BadName);
    }
    if new.scopes.is_empty() {
        return Err(ClientError::NoScopes);
    }
    if let Some(account) = &new.account
        && !settings.accounts.contains_key(account)
    {
        return Err(ClientError::UnknownAccount(account.clone()));
    }
    let now = clock::now();
    let expires_at = match new.expires_in {
        Some(d) if d.as_secs() == 0 => return Err(ClientError::BadExpiry),
        Some(d) => Some(now.saturating_add(d.as_secs().min(i64::MAX as u64) as i64)),
        None => None,
    };
    let mut scopes = new.scopes;
    scopes.sort();
    scopes.dedup();
    let key = keys::generate();
    let record = ClientRecord {
        name: new.name.to_string(),
        key_lookup: key.lookup.clone(),
        key_hash: key.hash.clone(),
        scopes,
        account: new.account,
        created_at: now,
        expires_at,
        revoked_at: None,
        rate_limit: new.rate_limit,
        upstream_per_minute: new.upstream_per_minute,
    };
    store.insert_client(&record).await?;
    Ok((record, key))
}

/// Gives a live client a new key; the old one stops working.
pub async fn rotate(store: &dyn Store, name: &str) -> Result<(ClientRecord, NewKey), ClientError> {
    let key = keys::generate();
    if !store
        .rotate_client(name, &key.lookup, &key.hash, clock::now())
        .await?
    {
        return Err(ClientError::NotFound(name.to_string()));
    }
    let record = store
        .list_clients()
        .await?
        .into_iter()
        .find(|c| c.name == name)
        .ok_or_else(|| ClientError::NotFound(name.to_string()))?;
    Ok((record, key))
}

/// Sets or clears a live client's own rate limit.
pub async fn set_rate_limit(
    store: &dyn Store,
    name: &str,
    limit: Option<(u32, u32)>,
) -> Result<(), ClientError> {
    match store
        .set_client_rate_limit(name, limit, clock::now())
        .await?
    {
        true => Ok(()),
        false => Err(ClientError::NotFound(name.to_string())),
    }
}

/// Sets or clears a live client's own budget of Zoom calls a minute.
pub async fn set_upstream_limit(
    store: &dyn Store,
    name: &str,
    per_minute: Option<u32>,
) -> Result<(), ClientError> {
    match store
        .set_client_upstream_limit(name, per_minute, clock::now())
        .await?
    {
        true => Ok(()),
        false => Err(ClientError::NotFound(name.to_string())),
    }
}

/// Parses a budget of Zoom calls a minute, 1–100000; `default` clears it.
pub fn parse_upstream_limit(text: &str) -> Result<Option<u32>, String> {
    if text == "default" {
        return Ok(None);
    }
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=100_000).contains(n))
        .map(Some)
        .ok_or_else(|| format!("{text:?}: expected a number from 1 to 100000, or `default`"))
}

/// Parses `RPS/BURST` (or `RPS`, burst = 2 × RPS), both 1–100000; `default` clears it.
pub fn parse_rate_limit(text: &str) -> Result<Option<(u32, u32)>, String> {
    if text == "default" {
        return Ok(None);
    }
    let number = |t: &str| {
        t.trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=100_000).contains(n))
            .ok_or_else(|| {
                format!("{text:?}: expected RPS/BURST with numbers from 1 to 100000, or `default`")
            })
    };
    match text.split_once('/') {
        Some((rate, burst)) => Ok(Some((number(rate)?, number(burst)?))),
        None => {
            let rate = number(text)?;
            Ok(Some((rate, rate.saturating_mul(2).min(100_000))))
        }
    }
}

pub async fn revoke(store: &dyn Store, name: &str) -> Result<(), ClientError> {
    match store.revoke_client(name, clock::now()).await? {
        true => Ok(()),
        false => Err(ClientError::NotFound(name.to_string())),
    }
}
