//! The SQLite store: one file, WAL, for a single process. Migrations in `migrations/sqlite`.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use super::{
    AuditEvent, ClientRecord, GrantRow, OAuthState, Placeholders, Store, StoreError, audit_chunks,
    audit_event_from_row, audit_insert_sql, bind_audit_events, rate_limit_from_columns,
    scopes_from_column,
};
use crate::scope;

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
    Ok(ClientRecord {
        rate_limit: rate_limit_from_columns(
            row.try_get("rate_limit_per_second")?,
            row.try_get("rate_limit_burst")?,
        )?,
        name: row.try_get("name")?,
        key_lookup: row.try_get("key_prefix")?,
        key_hash: row.try_get("key_hash")?,
        scopes: scopes_from_column(&scopes)?,
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

    async fn append_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        // Multi-row INSERTs of a few fixed sizes: a batch costs a few prepared statements,
        // not one per event.
        let mut tx = self.pool.begin().await?;
        for chunk in audit_chunks(events) {
            let insert = sqlx::query(audit_insert_sql(chunk.len(), Placeholders::Question));
            bind_audit_events(insert, chunk).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_audit(
        &self,
        since_ms: i64,
        caller: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT at_ms, request_id, caller, route, account, target_user, target, outcome, status FROM audit_events \
             WHERE at_ms >= ? AND (? IS NULL OR caller = ?) \
             ORDER BY at_ms DESC, id DESC LIMIT ?",
        )
        .bind(since_ms)
        .bind(caller)
        .bind(caller)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_event_from_row).collect()
    }

    async fn prune_audit(&self, before_ms: i64) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM audit_events WHERE at_ms < ?")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }

    async fn insert_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
        // IMMEDIATE takes the write lock up front (waiting up to the busy timeout): a deferred
        // transaction that reads and then writes fails at once ("database is locked") when
        // another connection, such as the audit writer, wrote in between.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
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
    use std::sync::Arc;

    use secrecy::SecretString;

    use super::super::{Store, connect};

    /// A store in a file of its own, in a folder that does not exist yet (so its creation is
    /// tested too); the folder goes when this does.
    struct TestDb {
        store: Arc<dyn Store>,
        _dir: tempfile::TempDir,
    }

    impl TestDb {
        fn store(&self) -> &dyn Store {
            self.store.as_ref()
        }
    }

    async fn open(_test: &str) -> Option<TestDb> {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/nested/ztv.db", dir.path().display());
        let store = connect(&SecretString::from(url)).await.unwrap();
        Some(TestDb { store, _dir: dir })
    }

    crate::store::store_suite!(open);
}
