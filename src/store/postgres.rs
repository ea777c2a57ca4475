//! The PostgreSQL store: shared by several replicas. Migrations in `migrations/postgres`,
//! applied at start under sqlx's advisory lock, so replicas that start together take turns.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::{
    AuditEvent, ClientRecord, GrantRow, OAuthState, Placeholders, Store, StoreError, audit_chunks,
    audit_event_from_row, audit_insert_sql, bind_audit_events, rate_limit_from_columns,
    scopes_from_column,
};
use crate::scope;

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// `url` is a libpq-style URL; its `options` parameter reaches the server, so
    /// `?options=-c%20search_path%3Dztv` puts the tables in schema `ztv`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }
}

/// A second live client of the same name, inserted by another process between our check and
/// our insert, is the same mistake as one found by the check.
fn duplicate_name(error: sqlx::Error, name: &str) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.constraint() == Some("api_clients_pkey") => {
            StoreError::Duplicate(name.to_owned())
        }
        _ => StoreError::Database(error),
    }
}

fn client_from_row(row: &sqlx::postgres::PgRow) -> Result<ClientRecord, StoreError> {
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

fn grant_from_row(row: &sqlx::postgres::PgRow) -> Result<GrantRow, StoreError> {
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
        needs_reauth: row.try_get("needs_reauth")?,
    })
}

#[async_trait]
impl Store for PostgresStore {
    async fn insert_oauth_state(
        &self,
        state_hash: &str,
        state: &OAuthState,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oauth_states (state_hash, account, caller, user_hint, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
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
            "DELETE FROM oauth_states WHERE state_hash = $1 \
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, 1, NULL, FALSE, $8, $9) \
             ON CONFLICT (account, zoom_user_id) DO UPDATE SET email = excluded.email, \
             refresh_token = excluded.refresh_token, access_token = excluded.access_token, \
             access_expires_at = excluded.access_expires_at, scopes = excluded.scopes, \
             version = user_grants.version + 1, refreshing_until = NULL, needs_reauth = FALSE, \
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
            "SELECT * FROM user_grants WHERE account = $1 AND (zoom_user_id = $2 OR email = $3) LIMIT 1",
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
            "UPDATE user_grants SET refreshing_until = $1, version = version + 1 \
             WHERE account = $2 AND zoom_user_id = $3 AND version = $4 \
             AND (refreshing_until IS NULL OR refreshing_until < $5)",
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
            "UPDATE user_grants SET refresh_token = $1, access_token = $2, access_expires_at = $3, \
             version = version + 1, refreshing_until = NULL, updated_at = $4 \
             WHERE account = $5 AND zoom_user_id = $6 AND version = $7",
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
             WHERE account = $1 AND zoom_user_id = $2 AND version = $3",
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
            "UPDATE user_grants SET needs_reauth = TRUE, refreshing_until = NULL, \
             version = version + 1, updated_at = $1 WHERE account = $2 AND zoom_user_id = $3",
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
            "DELETE FROM user_grants WHERE account = $1 AND (zoom_user_id = $2 OR email = $3) \
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
            let insert = sqlx::query(audit_insert_sql(chunk.len(), Placeholders::Numbered));
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
             WHERE at_ms >= $1 AND ($2::text IS NULL OR caller = $3) \
             ORDER BY at_ms DESC, id DESC LIMIT $4",
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
        let result = sqlx::query("DELETE FROM audit_events WHERE at_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }

    async fn insert_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let existing: Option<Option<i64>> =
            sqlx::query_scalar("SELECT revoked_at FROM api_clients WHERE name = $1")
                .bind(&c.name)
                .fetch_optional(&mut *tx)
                .await?;
        match existing {
            Some(None) => return Err(StoreError::Duplicate(c.name.clone())),
            Some(Some(_)) => {
                sqlx::query("DELETE FROM api_clients WHERE name = $1")
                    .bind(&c.name)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {}
        }
        sqlx::query(
            "INSERT INTO api_clients (name, key_prefix, key_hash, scopes, account, created_at, \
             expires_at, revoked_at, updated_at, rate_limit_per_second, rate_limit_burst) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
        .await
        .map_err(|e| duplicate_name(e, &c.name))?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        let rows = sqlx::query(
            // "C": byte order, as SQLite sorts, whatever the database's locale.
            "SELECT * FROM api_clients ORDER BY name COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(client_from_row).collect()
    }

    async fn revoke_client(&self, name: &str, now: i64) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE api_clients SET revoked_at = $1, updated_at = $2 \
             WHERE name = $3 AND revoked_at IS NULL",
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
            "UPDATE api_clients SET key_prefix = $1, key_hash = $2, updated_at = $3 \
             WHERE name = $4 AND revoked_at IS NULL",
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
            "UPDATE api_clients SET rate_limit_per_second = $1, rate_limit_burst = $2, \
             updated_at = $3 WHERE name = $4 AND revoked_at IS NULL",
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

    use futures_util::future::join_all;
    use secrecy::SecretString;
    use sqlx::{Connection, PgConnection};

    use super::super::{Store, connect};

    /// A store in a schema of its own (`ztv_test_<uuid>`) on the server named by
    /// `ZTV_TEST_DATABASE_URL`; the schema is dropped when this is, even after a failed assert.
    struct TestDb {
        store: Arc<dyn Store>,
        // Declared after `store`, so dropped after it.
        _schema: Schema,
    }

    impl TestDb {
        fn store(&self) -> &dyn Store {
            self.store.as_ref()
        }
    }

    struct Schema {
        server_url: String,
        name: String,
    }

    impl Schema {
        /// Creates a fresh, empty schema.
        async fn create(server_url: &str) -> Self {
            let name = format!("ztv_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = PgConnection::connect(server_url).await.unwrap();
            sqlx::query(&format!("CREATE SCHEMA {name}"))
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
            Self {
                server_url: server_url.to_owned(),
                name,
            }
        }

        /// The server's URL with this schema as the only one on the search path, so that
        /// tables (sqlx's migrations table too) are created and found there.
        fn url(&self) -> String {
            let mut url = url::Url::parse(&self.server_url).unwrap();
            url.query_pairs_mut()
                .append_pair("options", &format!("-c search_path={}", self.name));
            url.into()
        }
    }

    impl Drop for Schema {
        fn drop(&mut self) {
            // Drop cannot await, and this may run while a panicking test unwinds on the test's
            // runtime: a thread of its own with a runtime of its own. A lock timeout, so that a
            // connection left inside a transaction cannot hang the test run.
            let server_url = self.server_url.clone();
            let name = self.name.clone();
            let dropped = std::thread::spawn(move || -> Result<(), sqlx::Error> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async {
                    let mut conn = PgConnection::connect(&server_url).await?;
                    sqlx::query("SET lock_timeout = '10s'")
                        .execute(&mut conn)
                        .await?;
                    sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .execute(&mut conn)
                        .await?;
                    conn.close().await
                })
            })
            .join();
            if !matches!(dropped, Ok(Ok(()))) {
                eprintln!("could not drop test schema {}: {dropped:?}", self.name);
            }
        }
    }

    /// The test server's URL, or `None` (after saying so loudly) when there is none.
    fn server_url(test: &str) -> Option<String> {
        match std::env::var("ZTV_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ if std::env::var("ZTV_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") => {
                panic!("{test}: ZTV_TEST_REQUIRE_SERVICES=1 but ZTV_TEST_DATABASE_URL is not set")
            }
            _ => {
                eprintln!(
                    "SKIPPED: {test} needs PostgreSQL; set ZTV_TEST_DATABASE_URL \
                     (e.g. postgres://postgres@127.0.0.1:5432/test)"
                );
                None
            }
        }
    }

    async fn open(test: &str) -> Option<TestDb> {
        let schema = Schema::create(&server_url(test)?).await;
        let store = connect(&SecretString::from(schema.url())).await.unwrap();
        Some(TestDb {
            store,
            _schema: schema,
        })
    }

    crate::store::store_suite!(open);

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn replicas_starting_together_migrate_the_schema_once() {
        let Some(server_url) = server_url("replicas_starting_together_migrate_the_schema_once")
        else {
            return;
        };
        let schema = Schema::create(&server_url).await;
        // Both schemes select PostgreSQL.
        let urls = [
            schema.url(),
            schema.url().replacen("postgres://", "postgresql://", 1),
        ];

        // Four replicas at once on an empty schema: sqlx's migrator takes an advisory lock,
        // so one applies the migrations and the others find them applied.
        let stores = join_all((0..4).map(|i| {
            let url = SecretString::from(urls[i % 2].clone());
            tokio::spawn(async move { connect(&url).await })
        }))
        .await;

        let stores: Vec<Arc<dyn Store>> = stores
            .into_iter()
            .map(|joined| joined.unwrap().unwrap())
            .collect();
        let mut conn = PgConnection::connect(&schema.url()).await.unwrap();
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY 1")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        let shipped: Vec<i64> = sqlx::migrate!("./migrations/postgres")
            .iter()
            .map(|m| m.version)
            .collect();
        assert_eq!(applied, shipped, "every migration applied exactly once");
        conn.close().await.unwrap();
        for store in &stores {
            store.ping().await.unwrap();
            assert!(store.list_clients().await.unwrap().is_empty());
        }
        drop(stores);
        drop(schema);
    }

    #[tokio::test]
    async fn an_unknown_scheme_is_refused() {
        let url = SecretString::from("mysql://root@127.0.0.1/test".to_owned());

        let opened = connect(&url).await;

        assert!(matches!(opened, Err(super::StoreError::UnsupportedUrl)));
    }
}
