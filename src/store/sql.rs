//! The SQL of the store, once for both databases: every [`Store`](super::Store) method's
//! statements and body, written with SQLite's `?` placeholders, which the PostgreSQL store
//! numbers (`$1`, `$2`, …) before use. [`sql_store!`] stamps the bodies out for each store:
//! sqlx's pool, query and row types are per database, and one generic body would need a bound
//! for every type it binds or decodes, under higher-ranked lifetimes.
//!
//! A store that invokes the macro has a `pool` field and provides, as associated items:
//! * `fn sql(text: &'static str) -> Cow<'static, str>`: a statement in its spelling;
//! * `const PLACEHOLDERS: Placeholders`: the same, for the audit INSERTs built at run time;
//! * `async fn begin_write(&self) -> Result<Transaction, sqlx::Error>`: a transaction that
//!   reads, then writes;
//! * `fn duplicate_name(error: sqlx::Error, name: &str) -> StoreError`: a failed client
//!   INSERT, as the error the caller should see;
//! * `const CLIENTS_BY_NAME: &str`: every client, in byte order of name.
//!
//! SQL that both databases read the same way stands in for what differs less than it seems:
//! `TRUE`/`FALSE` (SQLite stores them as 1/0 in an INTEGER column, which sqlx decodes as
//! `bool`) and `CAST(? AS TEXT) IS NULL` (PostgreSQL must know a parameter's type).

use super::{ClientRecord, GrantRow, StoreError, rate_limit_from_columns, scopes_from_column};

/// `text` with its `?` placeholders numbered `$1`, `$2`, … in order, as PostgreSQL wants
/// them. The statements hold no `?` of their own (no string literals, no JSON operators).
pub(super) fn numbered(text: &str) -> String {
    use std::fmt::Write as _;
    let mut numbered = String::with_capacity(text.len() + 16);
    let mut next = 1;
    for c in text.chars() {
        if c == '?' {
            let _ = write!(numbered, "${next}");
            next += 1;
        } else {
            numbered.push(c);
        }
    }
    numbered
}

/// A client from a row of `api_clients`.
pub(super) fn client_from_row<R: sqlx::Row>(row: &R) -> Result<ClientRecord, StoreError>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
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
        upstream_per_minute: row
            .try_get::<Option<i64>, _>("upstream_per_minute")?
            .map(|n| u32::try_from(n).map_err(|_| StoreError::Corrupt("upstream limit".into())))
            .transpose()?,
    })
}

/// A grant from a row of `user_grants`.
pub(super) fn grant_from_row<R: sqlx::Row>(row: &R) -> Result<GrantRow, StoreError>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let kind: String = row.try_get("kind")?;
    Ok(GrantRow {
        account: row.try_get("account")?,
        kind: super::GrantKind::from_column(&kind)?,
        zoom_user_id: row.try_get("zoom_user_id")?,
        zoom_account_id: row.try_get("zoom_account_id")?,
        last_used_at: row.try_get("last_used_at")?,
        refreshed_at: row.try_get("refreshed_at")?,
        user_key: row.try_get("user_key")?,
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

/// `impl Store` for a store type (see the module's documentation for what it must provide).
/// Each call is a span for traces (target `ztv::trace`, see `telemetry::traces`) named after
/// the operation only: never its arguments.
macro_rules! sql_store {
    ($store:ty) => {
        #[::async_trait::async_trait]
        impl $crate::store::Store for $store {
            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store insert_oauth_state", db.operation.name = "insert_oauth_state"))]
            async fn insert_oauth_state(
                &self,
                state_hash: &str,
                state: &$crate::store::OAuthState,
                keep_per_caller: u32,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                let sql = Self::sql(
                    "INSERT INTO oauth_states (state_hash, account, caller, user_hint, \
                     install, created_ms, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                );
                sqlx::query(&sql)
                    .bind(state_hash)
                    .bind(&state.account)
                    .bind(&state.caller)
                    .bind(&state.user_hint)
                    .bind(state.install.as_str())
                    .bind(state.created_ms)
                    .bind(state.expires_at)
                    .execute(&mut *tx)
                    .await?;
                let sql = Self::sql(
                    "DELETE FROM oauth_states WHERE caller = ? AND state_hash NOT IN \
                     (SELECT state_hash FROM oauth_states WHERE caller = ? \
                     ORDER BY created_ms DESC, state_hash DESC LIMIT ?)",
                );
                sqlx::query(&sql)
                    .bind(&state.caller)
                    .bind(&state.caller)
                    .bind(i64::from(keep_per_caller))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store prune_oauth_states", db.operation.name = "prune_oauth_states"))]
            async fn prune_oauth_states(
                &self,
                now: i64,
            ) -> Result<u64, $crate::store::StoreError> {
                let sql = Self::sql("DELETE FROM oauth_states WHERE expires_at < ?");
                let result = sqlx::query(&sql).bind(now).execute(&self.pool).await?;
                Ok(result.rows_affected())
            }

            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store take_oauth_state", db.operation.name = "take_oauth_state"))]
            async fn take_oauth_state(
                &self,
                state_hash: &str,
            ) -> Result<Option<$crate::store::OAuthState>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let sql = Self::sql(
                    "DELETE FROM oauth_states WHERE state_hash = ? \
                     RETURNING account, caller, user_hint, install, created_ms, expires_at",
                );
                let row = sqlx::query(&sql)
                    .bind(state_hash)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|row| {
                    let install: String = row.try_get("install")?;
                    Ok($crate::store::OAuthState {
                        account: row.try_get("account")?,
                        caller: row.try_get("caller")?,
                        user_hint: row.try_get("user_hint")?,
                        install: $crate::store::GrantKind::from_column(&install)?,
                        created_ms: row.try_get("created_ms")?,
                        expires_at: row.try_get("expires_at")?,
                    })
                })
                .transpose()
            }

            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store put_grant", db.operation.name = "put_grant"))]
            async fn put_grant(
                &self,
                g: &$crate::store::GrantRow,
                now: i64,
            ) -> Result<(), $crate::store::StoreError> {
                let sql = Self::sql(
                    "INSERT INTO user_grants (account, zoom_user_id, kind, zoom_account_id, \
                     user_key, email, refresh_token, access_token, access_expires_at, scopes, \
                     version, refreshing_until, needs_reauth, last_used_at, refreshed_at, \
                     created_at, updated_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, NULL, FALSE, NULL, NULL, ?, ?) \
                     ON CONFLICT (account, zoom_user_id) DO UPDATE SET \
                     kind = excluded.kind, zoom_account_id = excluded.zoom_account_id, \
                     last_used_at = NULL, refreshed_at = NULL, created_at = excluded.created_at, \
                     user_key = excluded.user_key, email = excluded.email, \
                     refresh_token = excluded.refresh_token, access_token = excluded.access_token, \
                     access_expires_at = excluded.access_expires_at, scopes = excluded.scopes, \
                     version = user_grants.version + 1, refreshing_until = NULL, \
                     needs_reauth = FALSE, updated_at = excluded.updated_at",
                );
                sqlx::query(&sql)
                    .bind(&g.account)
                    .bind(&g.zoom_user_id)
                    .bind(g.kind.as_str())
                    .bind(&g.zoom_account_id)
                    .bind(&g.user_key)
                    .bind(&g.email)
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

            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store find_grant", db.operation.name = "find_grant"))]
            async fn find_grant(
                &self,
                account: &str,
                user: &$crate::zoom_user::ZoomUser,
            ) -> Result<Option<$crate::store::GrantRow>, $crate::store::StoreError> {
                let sql = Self::sql(
                    "SELECT * FROM user_grants WHERE account = ? AND kind = 'user' \
                     AND (user_key = ? OR email = ?) LIMIT 1",
                );
                let row = sqlx::query(&sql)
                    .bind(account)
                    .bind(user.key())
                    .bind(user.key())
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref()
                    .map($crate::store::sql::grant_from_row)
                    .transpose()
            }

            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store get_grant", db.operation.name = "get_grant"))]
            async fn get_grant(
                &self,
                account: &str,
                zoom_user_id: &str,
            ) -> Result<Option<$crate::store::GrantRow>, $crate::store::StoreError> {
                let sql =
                    Self::sql("SELECT * FROM user_grants WHERE account = ? AND zoom_user_id = ?");
                let row = sqlx::query(&sql)
                    .bind(account)
                    .bind(zoom_user_id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref()
                    .map($crate::store::sql::grant_from_row)
                    .transpose()
            }

            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store find_account_grant", db.operation.name = "find_account_grant"))]
            async fn find_account_grant(
                &self,
                account: &str,
                zoom_account_id: &str,
            ) -> Result<Option<$crate::store::GrantRow>, $crate::store::StoreError> {
                let id = $crate::store::account_grant_id(zoom_account_id);
                self.get_grant(account, &id).await
            }

            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store list_grants", db.operation.name = "list_grants"))]
            async fn list_grants(
                &self,
                account: Option<&str>,
                after: Option<(&str, &str)>,
                limit: i64,
            ) -> Result<Vec<$crate::store::GrantRow>, $crate::store::StoreError> {
                let sql = Self::sql(
                    "SELECT * FROM user_grants \
                     WHERE (CAST(? AS TEXT) IS NULL OR account = ?) \
                     AND (CAST(? AS TEXT) IS NULL OR account > ? \
                          OR (account = ? AND zoom_user_id > ?)) \
                     ORDER BY account, zoom_user_id LIMIT ?",
                );
                let (after_account, after_id) = after.unzip();
                let rows = sqlx::query(&sql)
                    .bind(account)
                    .bind(account)
                    .bind(after_account)
                    .bind(after_account)
                    .bind(after_account)
                    .bind(after_id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map($crate::store::sql::grant_from_row).collect()
            }

            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store delete_grant_by_id", db.operation.name = "delete_grant_by_id"))]
            async fn delete_grant_by_id(
                &self,
                account: &str,
                zoom_user_id: &str,
            ) -> Result<bool, $crate::store::StoreError> {
                let sql =
                    Self::sql("DELETE FROM user_grants WHERE account = ? AND zoom_user_id = ?");
                let result = sqlx::query(&sql)
                    .bind(account)
                    .bind(zoom_user_id)
                    .execute(&self.pool)
                    .await?;
                Ok(result.rows_affected() > 0)
            }

            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store touch_grant", db.operation.name = "touch_grant"))]
            async fn touch_grant(
                &self,
                account: &str,
                zoom_user_id: &str,
                now: i64,
                coarse: i64,
            ) -> Result<(), $crate::store::StoreError> {
                let sql = Self::sql(
                    "UPDATE user_grants SET last_used_at = ? \
                     WHERE account = ? AND zoom_user_id = ? \
                     AND (last_used_at IS NULL OR last_used_at < ?)",
                );
                sqlx::query(&sql)
                    .bind(now)
                    .bind(account)
                    .bind(zoom_user_id)
                    .bind(now - coarse)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store grants_to_keep_warm", db.operation.name = "grants_to_keep_warm"))]
            async fn grants_to_keep_warm(
                &self,
                expiring_before: i64,
                used_since: i64,
                limit: i64,
            ) -> Result<Vec<$crate::store::GrantRow>, $crate::store::StoreError> {
                let sql = Self::sql(
                    "SELECT * FROM user_grants WHERE needs_reauth = FALSE \
                     AND access_expires_at < ? \
                     AND COALESCE(last_used_at, created_at) >= ? \
                     ORDER BY access_expires_at LIMIT ?",
                );
                let rows = sqlx::query(&sql)
                    .bind(expiring_before)
                    .bind(used_since)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map($crate::store::sql::grant_from_row).collect()
            }

            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store count_grants", db.operation.name = "count_grants"))]
            async fn count_grants(&self) -> Result<(u64, u64), $crate::store::StoreError> {
                use sqlx::Row as _;
                let sql = Self::sql(
                    "SELECT COUNT(*) AS n, needs_reauth FROM user_grants GROUP BY needs_reauth",
                );
                let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
                let (mut active, mut needing) = (0, 0);
                for row in rows {
                    let n: i64 = row.try_get("n")?;
                    let needs: bool = row.try_get("needs_reauth")?;
                    *(if needs { &mut needing } else { &mut active }) += n.max(0) as u64;
                }
                Ok((active, needing))
            }

            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store claim_refresh", db.operation.name = "claim_refresh"))]
            async fn claim_refresh(
                &self,
                account: &str,
                zoom_user_id: &str,
                version: i64,
                lease_until: i64,
                now: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                let sql = Self::sql(
                    "UPDATE user_grants SET refreshing_until = ?, version = version + 1 \
                     WHERE account = ? AND zoom_user_id = ? AND version = ? \
                     AND (refreshing_until IS NULL OR refreshing_until < ?)",
                );
                let result = sqlx::query(&sql)
                    .bind(lease_until)
                    .bind(account)
                    .bind(zoom_user_id)
                    .bind(version)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(result.rows_affected() == 1)
            }

            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store store_refreshed", db.operation.name = "store_refreshed"))]
            async fn store_refreshed(
                &self,
                account: &str,
                zoom_user_id: &str,
                claimed_version: i64,
                refresh_token: &[u8],
                access_token: &[u8],
                access_expires_at: i64,
                now: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                let sql = Self::sql(
                    "UPDATE user_grants SET refresh_token = ?, access_token = ?, \
                     access_expires_at = ?, version = version + 1, refreshing_until = NULL, \
                     refreshed_at = ?, updated_at = ? \
                     WHERE account = ? AND zoom_user_id = ? AND version = ?",
                );
                let result = sqlx::query(&sql)
                    .bind(refresh_token)
                    .bind(access_token)
                    .bind(access_expires_at)
                    .bind(now)
                    .bind(now)
                    .bind(account)
                    .bind(zoom_user_id)
                    .bind(claimed_version)
                    .execute(&self.pool)
                    .await?;
                Ok(result.rows_affected() == 1)
            }

            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store release_refresh", db.operation.name = "release_refresh"))]
            async fn release_refresh(
                &self,
                account: &str,
                zoom_user_id: &str,
                claimed_version: i64,
            ) -> Result<(), $crate::store::StoreError> {
                let sql = Self::sql(
                    "UPDATE user_grants SET refreshing_until = NULL \
                     WHERE account = ? AND zoom_user_id = ? AND version = ?",
                );
                sqlx::query(&sql)
                    .bind(account)
                    .bind(zoom_user_id)
                    .bind(claimed_version)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store mark_needs_reauth", db.operation.name = "mark_needs_reauth"))]
            async fn mark_needs_reauth(
                &self,
                account: &str,
                zoom_user_id: &str,
                now: i64,
            ) -> Result<(), $crate::store::StoreError> {
                let sql = Self::sql(
                    "UPDATE user_grants SET needs_reauth = TRUE, refreshing_until = NULL, \
                     version = version + 1, updated_at = ? WHERE account = ? AND zoom_user_id = ?",
                );
                sqlx::query(&sql)
                    .bind(now)
                    .bind(account)
                    .bind(zoom_user_id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store delete_grant", db.operation.name = "delete_grant"))]
            async fn delete_grant(
                &self,
                account: &str,
                user: &$crate::zoom_user::ZoomUser,
            ) -> Result<Option<(String, String)>, $crate::store::StoreError> {
                use sqlx::Row as _;
                let sql = Self::sql(
                    "DELETE FROM user_grants WHERE account = ? AND kind = 'user' \
                     AND (user_key = ? OR email = ?) RETURNING zoom_user_id, email",
                );
                let row = sqlx::query(&sql)
                    .bind(account)
                    .bind(user.key())
                    .bind(user.key())
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|row| Ok((row.try_get("zoom_user_id")?, row.try_get("email")?)))
                    .transpose()
            }

            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store append_audit", db.operation.name = "append_audit"))]
            async fn append_audit(
                &self,
                events: &[$crate::store::AuditEvent],
            ) -> Result<(), $crate::store::StoreError> {
                // Multi-row INSERTs of a few fixed sizes: a batch costs a few prepared
                // statements, not one per event.
                let mut tx = self.pool.begin().await?;
                for chunk in $crate::store::audit::audit_chunks(events) {
                    let insert = sqlx::query($crate::store::audit::audit_insert_sql(
                        chunk.len(),
                        Self::PLACEHOLDERS,
                    ));
                    $crate::store::audit::bind_audit_events(insert, chunk)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store list_audit", db.operation.name = "list_audit"))]
            async fn list_audit(
                &self,
                since_ms: i64,
                caller: Option<&str>,
                limit: i64,
            ) -> Result<Vec<$crate::store::AuditEvent>, $crate::store::StoreError> {
                let sql = Self::sql(
                    "SELECT at_ms, request_id, caller, route, account, target_user, target, \
                     outcome, status FROM audit_events \
                     WHERE at_ms >= ? AND (CAST(? AS TEXT) IS NULL OR caller = ?) \
                     ORDER BY at_ms DESC, id DESC LIMIT ?",
                );
                let rows = sqlx::query(&sql)
                    .bind(since_ms)
                    .bind(caller)
                    .bind(caller)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map($crate::store::audit::audit_event_from_row)
                    .collect()
            }

            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store prune_audit", db.operation.name = "prune_audit"))]
            async fn prune_audit(&self, before_ms: i64) -> Result<u64, $crate::store::StoreError> {
                let sql = Self::sql("DELETE FROM audit_events WHERE at_ms < ?");
                let result = sqlx::query(&sql)
                    .bind(before_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(result.rows_affected())
            }

            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store insert_client", db.operation.name = "insert_client"))]
            async fn insert_client(
                &self,
                c: &$crate::store::ClientRecord,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.begin_write().await?;
                let sql = Self::sql("SELECT revoked_at FROM api_clients WHERE name = ?");
                let existing: Option<Option<i64>> = sqlx::query_scalar(&sql)
                    .bind(&c.name)
                    .fetch_optional(&mut *tx)
                    .await?;
                match existing {
                    Some(None) => return Err($crate::store::StoreError::Duplicate(c.name.clone())),
                    Some(Some(_)) => {
                        let sql = Self::sql("DELETE FROM api_clients WHERE name = ?");
                        sqlx::query(&sql).bind(&c.name).execute(&mut *tx).await?;
                    }
                    None => {}
                }
                let sql = Self::sql(
                    "INSERT INTO api_clients (name, key_prefix, key_hash, scopes, account, \
                     created_at, expires_at, revoked_at, updated_at, rate_limit_per_second, \
                     rate_limit_burst, upstream_per_minute) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                );
                sqlx::query(&sql)
                    .bind(&c.name)
                    .bind(&c.key_lookup)
                    .bind(&c.key_hash)
                    .bind($crate::scope::format_list(&c.scopes))
                    .bind(&c.account)
                    .bind(c.created_at)
                    .bind(c.expires_at)
                    .bind(c.revoked_at)
                    .bind(c.created_at)
                    .bind(c.rate_limit.map(|(r, _)| i64::from(r)))
                    .bind(c.rate_limit.map(|(_, b)| i64::from(b)))
                    .bind(c.upstream_per_minute.map(i64::from))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| Self::duplicate_name(e, &c.name))?;
                tx.commit().await?;
                Ok(())
            }

            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store list_clients", db.operation.name = "list_clients"))]
            async fn list_clients(
                &self,
            ) -> Result<Vec<$crate::store::ClientRecord>, $crate::store::StoreError> {
                let rows = sqlx::query(Self::CLIENTS_BY_NAME)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map($crate::store::sql::client_from_row)
                    .collect()
            }

            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store revoke_client", db.operation.name = "revoke_client"))]
            async fn revoke_client(
                &self,
                name: &str,
                now: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                let sql = Self::sql(
                    "UPDATE api_clients SET revoked_at = ?, updated_at = ? \
                     WHERE name = ? AND revoked_at IS NULL",
                );
                let result = sqlx::query(&sql)
                    .bind(now)
                    .bind(now)
                    .bind(name)
                    .execute(&self.pool)
                    .await?;
                Ok(result.rows_affected() == 1)
            }

            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store rotate_client", db.operation.name = "rotate_client"))]
            async fn rotate_client(
                &self,
                name: &str,
                key_lookup: &str,
                key_hash: &str,
                now: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                let sql = Self::sql(
                    "UPDATE api_clients SET key_prefix = ?, key_hash = ?, updated_at = ? \
                     WHERE name = ? AND revoked_at IS NULL",
                );
                let result = sqlx::query(&sql)
                    .bind(key_lookup)
                    .bind(key_hash)
                    .bind(now)
                    .bind(name)
                    .execute(&self.pool)
                    .await?;
                Ok(result.rows_affected() == 1)
            }

            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store set_client_rate_limit", db.operation.name = "set_client_rate_limit"))]
            async fn set_client_rate_limit(
                &self,
                name: &str,
                limit: Option<(u32, u32)>,
                now: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                let sql = Self::sql(
                    "UPDATE api_clients SET rate_limit_per_second = ?, rate_limit_burst = ?, \
                     updated_at = ? WHERE name = ? AND revoked_at IS NULL",
                );
                let result = sqlx::query(&sql)
                    .bind(limit.map(|(r, _)| i64::from(r)))
                    .bind(limit.map(|(_, b)| i64::from(b)))
                    .bind(now)
                    .bind(name)
                    .execute(&self.pool)
                    .await?;
                Ok(result.rows_affected() == 1)
            }

            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store set_client_upstream_limit", db.operation.name = "set_client_upstream_limit"))]
            async fn set_client_upstream_limit(
                &self,
                name: &str,
                per_minute: Option<u32>,
                now: i64,
            ) -> Result<bool, $crate::store::StoreError> {
                let sql = Self::sql(
                    "UPDATE api_clients SET upstream_per_minute = ?, updated_at = ? \
                     WHERE name = ? AND revoked_at IS NULL",
                );
                let result = sqlx::query(&sql)
                    .bind(per_minute.map(i64::from))
                    .bind(now)
                    .bind(name)
                    .execute(&self.pool)
                    .await?;
                Ok(result.rows_affected() == 1)
            }

            #[tracing::instrument(target = "ztv::trace", level = "debug", name = "store", skip_all,
                fields(otel.name = "store ping", db.operation.name = "ping"))]
            async fn ping(&self) -> Result<(), $crate::store::StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }
        }
    };
}

pub(super) use sql_store;

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn placeholders_are_numbered_in_order_for_postgres() {
        assert_eq!(
            numbered("UPDATE t SET a = ?, b = ? WHERE c = ? AND (CAST(? AS TEXT) IS NULL)"),
            "UPDATE t SET a = $1, b = $2 WHERE c = $3 AND (CAST($4 AS TEXT) IS NULL)"
        );
        assert_eq!(numbered("SELECT 1"), "SELECT 1");
        let eleven = ["?"; 11].join(", ");
        assert!(numbered(&eleven).ends_with("$10, $11"));
    }
}
