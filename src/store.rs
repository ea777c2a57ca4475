//! Persistent state behind one trait: API clients (later grants and audit events).
//! SQLite through sqlx, with the migrations in `migrations/sqlite` applied at start.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::scope::{self, Scope};

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
}

/// A pending authorisation (`state`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthState {
    pub account: String,
    pub caller: String,
    pub user_hint: Option<String>,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A user's grant as stored; tokens sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub account: String,
    pub zoom_user_id: String,
    pub email: String,
    pub refresh_token: Vec<u8>,
    pub access_token: Vec<u8>,
    pub access_expires_at: i64,
    pub scopes: String,
    pub version: i64,
    pub refreshing_until: Option<i64>,
    pub needs_reauth: bool,
}

#[async_trait]
pub trait Store: Send + Sync {
    async fn insert_oauth_state(
        &self,
        state_hash: &str,
        state: &OAuthState,
    ) -> Result<(), StoreError>;
    /// Removes and returns a pending authorisation (single use), expired or not.
    async fn take_oauth_state(&self, state_hash: &str) -> Result<Option<OAuthState>, StoreError>;
    /// Stores a new grant, replacing any earlier one of the same user.
    async fn put_grant(&self, grant: &GrantRow, now: i64) -> Result<(), StoreError>;
    /// A grant by Zoom user ID or email (case-insensitive).
    async fn find_grant(&self, account: &str, user: &str) -> Result<Option<GrantRow>, StoreError>;
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
    /// Deletes a grant by Zoom user ID or email; returns the deleted grant's user ID and email.
    async fn delete_grant(
        &self,
        account: &str,
        user: &str,
    ) -> Result<Option<(String, String)>, StoreError>;
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
    /// Answers when the store can be reached.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Opens the store named by `url`, creating it and applying migrations.
pub async fn connect(url: &SecretString) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(SqliteStore::connect(url.expose_secret()).await?))
}

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        if let Some(parent) = Path::new(options.get_filename()).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Folder {
                path: parent.display().to_string(),
                source,
            })?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }
}

fn client_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<ClientRecord, StoreError> {
    let scopes: String = row.try_get("scopes")?;
    let per_second: Option<i64> = row.try_get("rate_limit_per_second")?;
    let burst: Option<i64> = row.try_get("rate_limit_burst")?;
    let rate_limit = match (per_second, burst) {
        (Some(r), Some(b)) => Some((
            u32::try_from(r).map_err(|_| StoreError::Corrupt("rate limit".into()))?,
            u32::try_from(b).map_err(|_| StoreError::Corrupt("rate limit".into()))?,
        )),
        _ => None,
    };
    Ok(ClientRecord {
        rate_limit,
        name: row.try_get("name")?,
        key_lookup: row.try_get("key_prefix")?,
        key_hash: row.try_get("key_hash")?,
        scopes: scope::parse_list(&scopes).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        account: row.try_get("account")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn grant_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<GrantRow, StoreError> {
    Ok(GrantRow {
        account: row.try_get("account")?,
        zoom_user_id: row.try_get("zoom_user_id")?,
        email: row.try_get("email")?,
        refresh_token: row.try_get("refresh_token")?,
        access_token: row.try_get("access_token")?,
        access_expires_at: row.try_get("access_expires_at")?,
        scopes: row.try_get("scopes")?,
        version: row.try_get("version")?,
        refreshing_until: row.try_get("refreshing_until")?,
        needs_reauth: row.try_get::<i64, _>("needs_reauth")? != 0,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_oauth_state(
        &self,
        state_hash: &str,
        state: &OAuthState,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oauth_states (state_hash, account, caller, user_hint, expires_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(state_hash)
        .bind(&state.account)
        .bind(&state.caller)
        .bind(&state.user_hint)
        .bind(state.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn take_oauth_state(&self, state_hash: &str) -> Result<Option<OAuthState>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM oauth_states WHERE state_hash = ? \
             RETURNING account, caller, user_hint, expires_at",
        )
        .bind(state_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(OAuthState {
                account: row.try_get("account")?,
                caller: row.try_get("caller")?,
                user_hint: row.try_get("user_hint")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    async fn put_grant(&self, g: &GrantRow, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO user_grants (account, zoom_user_id, email, refresh_token, access_token, \
             access_expires_at, scopes, version, refreshing_until, needs_reauth, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, 1, NULL, 0, ?, ?) \
             ON CONFLICT (account, zoom_user_id) DO UPDATE SET email = excluded.email, \
             refresh_token = excluded.refresh_token, access_token = excluded.access_token, \
             access_expires_at = excluded.access_expires_at, scopes = excluded.scopes, \
             version = user_grants.version + 1, refreshing_until = NULL, needs_reauth = 0, \
             updated_at = excluded.updated_at",
        )
        .bind(&g.account)
        .bind(&g.zoom_user_id)
        .bind(g.email.to_lowercase())
        .bind(&g.refresh_token)
        .bind(&g.access_token)
        .bind(g.access_expires_at)
        .bind(&g.scopes)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_grant(&self, account: &str, user: &str) -> Result<Option<GrantRow>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM user_grants WHERE account = ? AND (zoom_user_id = ? OR email = ?) LIMIT 1",
        )
        .bind(account)
        .bind(user)
        .bind(user.to_lowercase())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(grant_from_row).transpose()
    }

    async fn claim_refresh(
        &self,
        account: &str,
        zoom_user_id: &str,
        version: i64,
        lease_until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE user_grants SET refreshing_until = ?, version = version + 1 \
             WHERE account = ? AND zoom_user_id = ? AND version = ? \
             AND (refreshing_until IS NULL OR refreshing_until < ?)",
        )
        .bind(lease_until)
        .bind(account)
        .bind(zoom_user_id)
        .bind(version)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn store_refreshed(
        &self,
        account: &str,
        zoom_user_id: &str,
        claimed_version: i64,
        refresh_token: &[u8],
        access_token: &[u8],
        access_expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE user_grants SET refresh_token = ?, access_token = ?, access_expires_at = ?, \
             version = version + 1, refreshing_until = NULL, updated_at = ? \
             WHERE account = ? AND zoom_user_id = ? AND version = ?",
        )
        .bind(refresh_token)
        .bind(access_token)
        .bind(access_expires_at)
        .bind(now)
        .bind(account)
        .bind(zoom_user_id)
        .bind(claimed_version)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn release_refresh(
        &self,
        account: &str,
        zoom_user_id: &str,
        claimed_version: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE user_grants SET refreshing_until = NULL \
             WHERE account = ? AND zoom_user_id = ? AND version = ?",
        )
        .bind(account)
        .bind(zoom_user_id)
        .bind(claimed_version)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn mark_needs_reauth(
        &self,
        account: &str,
        zoom_user_id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE user_grants SET needs_reauth = 1, refreshing_until = NULL, \
             version = version + 1, updated_at = ? WHERE account = ? AND zoom_user_id = ?",
        )
        .bind(now)
        .bind(account)
        .bind(zoom_user_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_grant(
        &self,
        account: &str,
        user: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM user_grants WHERE account = ? AND (zoom_user_id = ? OR email = ?) \
             RETURNING zoom_user_id, email",
        )
        .bind(account)
        .bind(user)
        .bind(user.to_lowercase())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| Ok((row.try_get("zoom_user_id")?, row.try_get("email")?)))
            .transpose()
    }

    async fn insert_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let existing: Option<Option<i64>> =
            sqlx::query_scalar("SELECT revoked_at FROM api_clients WHERE name = ?")
                .bind(&c.name)
                .fetch_optional(&mut *tx)
                .await?;
        match existing {
            Some(None) => return Err(StoreError::Duplicate(c.name.clone())),
            Some(Some(_)) => {
                sqlx::query("DELETE FROM api_clients WHERE name = ?")
                    .bind(&c.name)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {}
        }
        sqlx::query(
            "INSERT INTO api_clients (name, key_prefix, key_hash, scopes, account, created_at, \
             expires_at, revoked_at, updated_at, rate_limit_per_second, rate_limit_burst) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&c.name)
        .bind(&c.key_lookup)
        .bind(&c.key_hash)
        .bind(scope::format_list(&c.scopes))
        .bind(&c.account)
        .bind(c.created_at)
        .bind(c.expires_at)
        .bind(c.revoked_at)
        .bind(c.created_at)
        .bind(c.rate_limit.map(|(r, _)| i64::from(r)))
        .bind(c.rate_limit.map(|(_, b)| i64::from(b)))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM api_clients ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(client_from_row).collect()
    }

    async fn revoke_client(&self, name: &str, now: i64) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE api_clients SET revoked_at = ?, updated_at = ? \
             WHERE name = ? AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(now)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn rotate_client(
        &self,
        name: &str,
        key_lookup: &str,
        key_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE api_clients SET key_prefix = ?, key_hash = ?, updated_at = ? \
             WHERE name = ? AND revoked_at IS NULL",
        )
        .bind(key_lookup)
        .bind(key_hash)
        .bind(now)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn set_client_rate_limit(
        &self,
        name: &str,
        limit: Option<(u32, u32)>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE api_clients SET rate_limit_per_second = ?, rate_limit_burst = ?, \
             updated_at = ? WHERE name = ? AND revoked_at IS NULL",
        )
        .bind(limit.map(|(r, _)| i64::from(r)))
        .bind(limit.map(|(_, b)| i64::from(b)))
        .bind(now)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, lookup: &str) -> ClientRecord {
        ClientRecord {
            name: name.into(),
            key_lookup: lookup.into(),
            key_hash: "00".repeat(32),
            scopes: vec![Scope::MeetingSdkSignature],
            account: Some("prod".into()),
            created_at: 100,
            expires_at: None,
            revoked_at: None,
            rate_limit: None,
        }
    }

    #[tokio::test]
    async fn clients_are_created_listed_rotated_and_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/nested/ztv.db", dir.path().display());
        let store = SqliteStore::connect(&url).await.unwrap();

        store
            .insert_client(&record("web", "ztv_aaaaaaaa"))
            .await
            .unwrap();
        let dup = store.insert_client(&record("web", "ztv_bbbbbbbb")).await;
        assert!(matches!(dup, Err(StoreError::Duplicate(_))));

        assert!(
            store
                .rotate_client("web", "ztv_cccccccc", "11", 200)
                .await
                .unwrap()
        );
        let listed = store.list_clients().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].key_lookup, "ztv_cccccccc");

        assert!(store.revoke_client("web", 300).await.unwrap());
        assert!(!store.revoke_client("web", 301).await.unwrap());
        assert!(
            !store
                .rotate_client("web", "ztv_dddddddd", "22", 302)
                .await
                .unwrap()
        );

        // A revoked name may be used again.
        store
            .insert_client(&record("web", "ztv_eeeeeeee"))
            .await
            .unwrap();
        let listed = store.list_clients().await.unwrap();
        assert_eq!(listed[0].revoked_at, None);
    }
}
