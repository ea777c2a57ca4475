//! Persistent state behind one trait: API clients, users' OAuth grants and pending
//! authorisations. SQLite for one process, PostgreSQL for several replicas, both through sqlx,
//! each with its own migrations (`migrations/sqlite`, `migrations/postgres`) applied at start.
//!
//! The SQL is written once in `sql` for both databases, the audit log's in `audit`; every
//! backend runs the same behaviour tests (`suite`).
//!
//! May import: scope, zoom_user (the value types it stores). Nothing else of ztv.

mod audit;
mod postgres;
mod sql;
mod sqlite;
#[cfg(test)]
pub(crate) mod suite;

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use crate::scope::{self, Scope};
use crate::zoom_user::ZoomUser;

pub use postgres::PostgresStore;
pub use sqlite::{SqliteStore, readable_by_others};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the database folder {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error("stored row is corrupt: {0}")]
    Corrupt(String),
    #[error("a client named `{0}` already exists")]
    Duplicate(String),
    #[error("database URL must start with sqlite:, postgres:// or postgresql://")]
    UnsupportedUrl,
}

/// An API client as stored (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub name: String,
    pub key_lookup: String,
    /// Hex SHA-256 of the key.
    pub key_hash: String,
    pub scopes: Vec<Scope>,
    /// `None`: any configured account.
    pub account: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// Requests per second and burst; `None`: the configured default.
    pub rate_limit: Option<(u32, u32)>,
    /// Zoom calls a minute; `None`: the configured default.
    pub upstream_per_minute: Option<u32>,
}

/// One audited action: who, what, for whom, with what outcome. Never a token or secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// Unix milliseconds.
    pub at_ms: i64,
    pub request_id: Option<Arc<str>>,
    pub caller: Option<Arc<str>>,
    pub route: String,
    pub account: Option<String>,
    pub target_user: Option<String>,
    /// Meeting number or Video SDK session name.
    pub target: Option<String>,
    /// `issued`, `refused`, `failed`, or an action (`created`, `revoked`, …).
    pub outcome: Cow<'static, str>,
    pub status: u16,
}

/// A pending authorisation (`state`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthState {
    pub account: String,
    pub caller: String,
    pub user_hint: Option<String>,
    pub install: GrantKind,
    /// Unix milliseconds: a caller's oldest pending states are the first dropped.
    pub created_ms: i64,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Whose a grant is: one user's own, or a whole Zoom account's (an admin's install).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantKind {
    User,
    Account,
}

impl GrantKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantKind::User => "user",
            GrantKind::Account => "account",
        }
    }

    fn from_column(text: &str) -> Result<Self, StoreError> {
        match text {
            "user" => Ok(GrantKind::User),
            "account" => Ok(GrantKind::Account),
            _ => Err(StoreError::Corrupt("grant kind".into())),
        }
    }
}

/// The `zoom_user_id` of an account grant: no Zoom user ID has a `:`.
pub fn account_grant_id(zoom_account_id: &str) -> String {
    format!("account:{zoom_account_id}")
}

/// A grant as stored; tokens sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub account: String,
    pub kind: GrantKind,
    /// As Zoom gave it; for an account grant [`account_grant_id`].
    pub zoom_user_id: String,
    /// The Zoom account of the grant's user (of an account grant: the installed account);
    /// `None` for grants stored before it was kept.
    pub zoom_account_id: Option<String>,
    /// `zoom_user_id` with ASCII case folded ([`ZoomUser::key`]).
    pub user_key: String,
    /// ASCII case folded ([`ZoomUser::key`]).
    pub email: String,
    pub refresh_token: Vec<u8>,
    pub access_token: Vec<u8>,
    pub access_expires_at: i64,
    pub scopes: String,
    pub version: i64,
    pub refreshing_until: Option<i64>,
    pub needs_reauth: bool,
    /// Unix seconds: the last time a token was served from it, the last refresh.
    pub last_used_at: Option<i64>,
    pub refreshed_at: Option<i64>,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Adds a pending authorisation, then drops the same caller's oldest beyond the newest
    /// `keep_per_caller`.
    async fn insert_oauth_state(
        &self,
        state_hash: &str,
        state: &OAuthState,
        keep_per_caller: u32,
    ) -> Result<(), StoreError>;
    /// Removes and returns a pending authorisation (single use), expired or not.
    async fn take_oauth_state(&self, state_hash: &str) -> Result<Option<OAuthState>, StoreError>;
    /// Deletes pending authorisations that expired before `now` (Unix seconds); returns how
    /// many.
    async fn prune_oauth_states(&self, now: i64) -> Result<u64, StoreError>;
    /// Stores a new grant, replacing any earlier one of the same user.
    async fn put_grant(&self, grant: &GrantRow, now: i64) -> Result<(), StoreError>;
    /// A user's own grant by Zoom user ID or email, compared as [`ZoomUser`]s (ASCII case
    /// folded). Never an account grant.
    async fn find_grant(
        &self,
        account: &str,
        user: &ZoomUser,
    ) -> Result<Option<GrantRow>, StoreError>;
    /// A grant of either kind by its key.
    async fn get_grant(
        &self,
        account: &str,
        zoom_user_id: &str,
    ) -> Result<Option<GrantRow>, StoreError>;
    /// The account grant of a Zoom account.
    async fn find_account_grant(
        &self,
        account: &str,
        zoom_account_id: &str,
    ) -> Result<Option<GrantRow>, StoreError>;
    /// Grants of both kinds in order of (account, zoom_user_id), of `account` if given, after
    /// the key `after` if given, at most `limit`.
    async fn list_grants(
        &self,
        account: Option<&str>,
        after: Option<(&str, &str)>,
        limit: i64,
    ) -> Result<Vec<GrantRow>, StoreError>;
    /// Deletes a grant of either kind by its key; whether there was one.
    async fn delete_grant_by_id(
        &self,
        account: &str,
        zoom_user_id: &str,
    ) -> Result<bool, StoreError>;
    /// Notes that a token was served from the grant at `now`, writing only when the last note
    /// is older than `coarse` seconds (one write per grant and interval, not per request).
    async fn touch_grant(
        &self,
        account: &str,
        zoom_user_id: &str,
        now: i64,
        coarse: i64,
    ) -> Result<(), StoreError>;
    /// Grants not needing re-authorisation whose access token expires before `expiring_before`
    /// and which were used (or made) at or after `used_since`: the background refresh's work.
    async fn grants_to_keep_warm(
        &self,
        expiring_before: i64,
        used_since: i64,
        limit: i64,
    ) -> Result<Vec<GrantRow>, StoreError>;
    /// How many grants there are, by whether they need re-authorisation: (active, needing).
    async fn count_grants(&self) -> Result<(u64, u64), StoreError>;
    /// Takes the refresh lease if the grant is still at `version` and nobody holds a live
    /// lease; the version is bumped. `false`: someone else got there first.
    async fn claim_refresh(
        &self,
        account: &str,
        zoom_user_id: &str,
        version: i64,
        lease_until: i64,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Writes refreshed tokens if the grant is still at `claimed_version`; releases the lease.
    #[allow(clippy::too_many_arguments)]
    async fn store_refreshed(
        &self,
        account: &str,
        zoom_user_id: &str,
        claimed_version: i64,
        refresh_token: &[u8],
        access_token: &[u8],
        access_expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Ends a lease without new tokens (the refresh failed for a passing reason).
    async fn release_refresh(
        &self,
        account: &str,
        zoom_user_id: &str,
        claimed_version: i64,
    ) -> Result<(), StoreError>;
    /// Zoom refused the refresh token: the user must authorise again.
    async fn mark_needs_reauth(
        &self,
        account: &str,
        zoom_user_id: &str,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Deletes a user's own grant by Zoom user ID or email, compared as [`ZoomUser`]s; returns
    /// the deleted grant's user ID and email as stored.
    async fn delete_grant(
        &self,
        account: &str,
        user: &ZoomUser,
    ) -> Result<Option<(String, String)>, StoreError>;
    /// Appends audit events in one transaction.
    async fn append_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError>;
    /// Events at or after `since_ms`, of `caller` if given, newest first, at most `limit`.
    async fn list_audit(
        &self,
        since_ms: i64,
        caller: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, StoreError>;
    /// Deletes events older than `before_ms`; returns how many.
    async fn prune_audit(&self, before_ms: i64) -> Result<u64, StoreError>;
    /// Adds a client. A revoked client of the same name is replaced; a live one is a
    /// [`StoreError::Duplicate`].
    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError>;
    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError>;
    /// Marks a client revoked; `false` when there is no live client of that name.
    async fn revoke_client(&self, name: &str, now: i64) -> Result<bool, StoreError>;
    /// Replaces a live client's key; `false` when there is no live client of that name.
    async fn rotate_client(
        &self,
        name: &str,
        key_lookup: &str,
        key_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Sets (or with `None` clears) a live client's own rate limit; `false` when there is no
    /// live client of that name.
    async fn set_client_rate_limit(
        &self,
        name: &str,
        limit: Option<(u32, u32)>,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Sets (or with `None` clears) a live client's own budget of Zoom calls a minute; `false`
    /// when there is no live client of that name.
    async fn set_client_upstream_limit(
        &self,
        name: &str,
        per_minute: Option<u32>,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Answers when the store can be reached.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Opens the store named by `url`, creating it and applying migrations.
/// The scheme picks the backend: `sqlite:` or `postgres:` / `postgresql:`.
pub async fn connect(url: &SecretString) -> Result<Arc<dyn Store>, StoreError> {
    let url = url.expose_secret();
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(PostgresStore::connect(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl)
    }
}

/// A client's own rate limit from its two columns; `None` unless both are set.
fn rate_limit_from_columns(
    per_second: Option<i64>,
    burst: Option<i64>,
) -> Result<Option<(u32, u32)>, StoreError> {
    match (per_second, burst) {
        (Some(r), Some(b)) => Ok(Some((
            u32::try_from(r).map_err(|_| StoreError::Corrupt("rate limit".into()))?,
            u32::try_from(b).map_err(|_| StoreError::Corrupt("rate limit".into()))?,
        ))),
        _ => Ok(None),
    }
}

/// A client's scopes from their stored, space-separated form.
fn scopes_from_column(scopes: &str) -> Result<Vec<Scope>, StoreError> {
    scope::parse_list(scopes).map_err(|e| StoreError::Corrupt(e.to_string()))
}
