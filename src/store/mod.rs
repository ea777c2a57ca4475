//! Persistent state behind one trait: API clients, users' OAuth grants and pending
//! authorisations. SQLite for one process, PostgreSQL for several replicas, both through sqlx,
//! each with its own migrations (`migrations/sqlite`, `migrations/postgres`) applied at start.

mod postgres;
mod sql;
mod sqlite;

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use crate::scope::{self, Scope};
use crate::zoom_user::ZoomUser;

pub use postgres::PostgresStore;
pub use sqlite::{SqliteStore, readable_by_others};

/// Audit events per INSERT statement at most: 9 bound values each, well under SQLite's and
/// PostgreSQL's limits on bound parameters. A power of two (see [`audit_chunks`]).
const AUDIT_ROWS_PER_INSERT: usize = 64;

/// A batch of audit events as multi-row INSERTs of [`AUDIT_ROWS_PER_INSERT`] rows, then the
/// rest in falling powers of two (32, 16, …, 1). So there are seven statement shapes, each
/// prepared once per connection and then taken from its statement cache, rather than a new
/// statement parsed for nearly every flush.
fn audit_chunks(events: &[AuditEvent]) -> impl Iterator<Item = &[AuditEvent]> {
    let mut rest = events;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = AUDIT_ROWS_PER_INSERT.min(1 << rest.len().ilog2());
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// How a database spells bound parameters. sqlx's SQLite driver also takes PostgreSQL's
/// `$1, $2, …`, but binds them by name, which is slower; so statements are written with `?`
/// and numbered for PostgreSQL (see [`sql`]).
#[derive(Clone, Copy)]
enum Placeholders {
    /// SQLite: `?`.
    Question,
    /// PostgreSQL: `$1`, `$2`, ….
    Numbered,
}

/// The multi-row INSERT for a chunk from [`audit_chunks`] (a power of two up to
/// [`AUDIT_ROWS_PER_INSERT`] rows), its text built once per shape and process: building it
/// anew (`QueryBuilder`) for every chunk cost about a microsecond per event.
fn audit_insert_sql(rows: usize, placeholders: Placeholders) -> &'static str {
    static QUESTION: OnceLock<Vec<String>> = OnceLock::new();
    static NUMBERED: OnceLock<Vec<String>> = OnceLock::new();
    debug_assert!(rows.is_power_of_two() && rows <= AUDIT_ROWS_PER_INSERT);
    let shapes = match placeholders {
        Placeholders::Question => &QUESTION,
        Placeholders::Numbered => &NUMBERED,
    };
    let shapes = shapes.get_or_init(|| {
        (0..=AUDIT_ROWS_PER_INSERT.ilog2())
            .map(|power| build_audit_insert(1 << power, placeholders))
            .collect()
    });
    &shapes[rows.ilog2() as usize]
}

/// Values bound per audit event, in the column order of [`build_audit_insert`].
const AUDIT_VALUES_PER_EVENT: usize = 9;

/// The events of a chunk bound to its INSERT (from [`audit_insert_sql`]), in column order.
fn bind_audit_events<'q, DB: sqlx::Database>(
    mut insert: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    events: &'q [AuditEvent],
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i32: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for e in events {
        insert = insert
            .bind(e.at_ms)
            .bind(e.request_id.as_deref())
            .bind(e.caller.as_deref())
            .bind(e.route.as_str())
            .bind(e.account.as_deref())
            .bind(e.target_user.as_deref())
            .bind(e.target.as_deref())
            .bind(&*e.outcome)
            .bind(i32::from(e.status));
    }
    insert
}

/// An audit event read back by `list_audit`, from a row of its SELECT.
fn audit_event_from_row<R: sqlx::Row>(row: &R) -> Result<AuditEvent, StoreError>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let text = |column: &str| row.try_get::<Option<String>, _>(column);
    Ok(AuditEvent {
        at_ms: row.try_get("at_ms")?,
        request_id: text("request_id")?.map(Arc::from),
        caller: text("caller")?.map(Arc::from),
        route: row.try_get("route")?,
        account: text("account")?,
        target_user: text("target_user")?,
        target: text("target")?,
        outcome: Cow::Owned(row.try_get("outcome")?),
        status: u16::try_from(row.try_get::<i32, _>("status")?)
            .map_err(|_| StoreError::Corrupt("audit status".into()))?,
    })
}

fn build_audit_insert(rows: usize, placeholders: Placeholders) -> String {
    let mut sql = String::from(
        "INSERT INTO audit_events \
         (at_ms, request_id, caller, route, account, target_user, target, outcome, status) VALUES ",
    );
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for value in 0..AUDIT_VALUES_PER_EVENT {
            if value > 0 {
                sql.push_str(", ");
            }
            sql.push('?');
        }
        sql.push(')');
    }
    match placeholders {
        Placeholders::Question => sql,
        Placeholders::Numbered => sql::numbered(&sql),
    }
}

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
    /// Unix milliseconds: a caller's oldest pending states are the first dropped.
    pub created_ms: i64,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A user's grant as stored; tokens sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub account: String,
    /// As Zoom gave it.
    pub zoom_user_id: String,
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
    /// A grant by Zoom user ID or email, compared as [`ZoomUser`]s (ASCII case folded).
    async fn find_grant(
        &self,
        account: &str,
        user: &ZoomUser,
    ) -> Result<Option<GrantRow>, StoreError>;
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
    /// Deletes a grant by Zoom user ID or email, compared as [`ZoomUser`]s; returns the
    /// deleted grant's user ID and email as stored.
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

/// One `#[tokio::test]` per function of [`suite`], for one backend. `$open` is an async fn
/// taking the test's name and giving `Option` of a value with `fn store(&self) -> &dyn Store`
/// (`None`: the backend is not available here and the test said so). A function added to
/// [`suite`] is listed here too, so that every backend runs it.
#[cfg(test)]
macro_rules! store_suite {
    ($open:path) => {
        $crate::store::store_suite!(
            @each $open;
            clients_are_created_listed_rotated_and_revoked,
            clients_come_back_exactly_as_stored_in_byte_order_of_name,
            client_rate_limits_are_set_and_cleared,
            client_upstream_limits_are_set_and_cleared,
            oauth_states_are_taken_once,
            oauth_states_are_bounded_per_caller_and_pruned_when_expired,
            grants_are_found_by_user_id_or_email_in_any_case,
            grants_are_never_found_by_a_unicode_case_fold,
            a_new_grant_replaces_the_old_one_and_clears_its_state,
            of_many_claims_on_one_version_exactly_one_wins,
            a_live_lease_blocks_a_claim_and_an_expired_one_does_not,
            refreshed_tokens_are_stored_only_at_the_claimed_version,
            a_released_lease_lets_the_next_claim_in_at_once,
            a_grant_marked_for_reauthorisation_says_so,
            a_deleted_grant_names_its_user_and_is_gone,
            a_reachable_store_answers_ping,
            audit_events_are_listed_newest_first_by_caller_and_pruned,
        );
    };
    (@each $open:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let Some(db) = $open(stringify!($name)).await else {
                    return;
                };
                $crate::store::suite::$name(db.store()).await;
            }
        )*
    };
}
#[cfg(test)]
pub(crate) use store_suite;

/// The store's behaviour, written once against [`Store`]; each backend's tests run all of it
/// through [`store_suite!`].
#[cfg(test)]
pub(crate) mod suite {
    use futures_util::future::join_all;

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
            upstream_per_minute: None,
        }
    }

    fn user(text: &str) -> ZoomUser {
        ZoomUser::parse(text).unwrap()
    }

    /// A grant as the domain stores it: identities folded.
    fn grant(user_id: &str, email: &str) -> GrantRow {
        GrantRow {
            account: "prod".into(),
            zoom_user_id: user_id.into(),
            user_key: user_id.to_ascii_lowercase(),
            email: email.to_ascii_lowercase(),
            // Every byte value survives the round trip, NUL included.
            refresh_token: vec![0, 1, 0xfe, 0xff],
            access_token: b"sealed access".to_vec(),
            access_expires_at: 1_000,
            scopes: "user:read:zak".into(),
            version: 0,
            refreshing_until: None,
            needs_reauth: false,
        }
    }

    async fn find(store: &dyn Store, who: &str) -> GrantRow {
        store
            .find_grant("prod", &user(who))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no grant for {who}"))
    }

    pub(crate) async fn clients_are_created_listed_rotated_and_revoked(store: &dyn Store) {
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
        assert_eq!(listed[0].key_hash, "11");

        assert!(store.revoke_client("web", 300).await.unwrap());
        assert!(!store.revoke_client("web", 301).await.unwrap());
        assert!(!store.revoke_client("nobody", 301).await.unwrap());
        assert!(
            !store
                .rotate_client("web", "ztv_dddddddd", "22", 302)
                .await
                .unwrap()
        );
        assert_eq!(store.list_clients().await.unwrap()[0].revoked_at, Some(300));

        // A revoked name may be used again.
        store
            .insert_client(&record("web", "ztv_eeeeeeee"))
            .await
            .unwrap();
        let listed = store.list_clients().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].revoked_at, None);
        assert_eq!(listed[0].key_lookup, "ztv_eeeeeeee");
    }

    pub(crate) async fn clients_come_back_exactly_as_stored_in_byte_order_of_name(
        store: &dyn Store,
    ) {
        let full = ClientRecord {
            name: "web".into(),
            key_lookup: "ztv_aaaaaaaa".into(),
            key_hash: "ab".repeat(32),
            scopes: vec![Scope::MeetingSdkSignature, Scope::ZakRead],
            account: None,
            created_at: 1_700_000_000,
            expires_at: Some(1_800_000_000),
            revoked_at: None,
            rate_limit: Some((u32::MAX, 7)),
            upstream_per_minute: Some(u32::MAX),
        };
        store.insert_client(&full).await.unwrap();
        store
            .insert_client(&record("Zeta", "ztv_bbbbbbbb"))
            .await
            .unwrap();
        store
            .insert_client(&record("alpha", "ztv_cccccccc"))
            .await
            .unwrap();

        let listed = store.list_clients().await.unwrap();

        let names: Vec<&str> = listed.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["Zeta", "alpha", "web"]);
        assert_eq!(listed[2], full);
        assert_eq!(listed[1], record("alpha", "ztv_cccccccc"));
    }

    pub(crate) async fn client_rate_limits_are_set_and_cleared(store: &dyn Store) {
        store
            .insert_client(&record("web", "ztv_aaaaaaaa"))
            .await
            .unwrap();

        assert!(
            store
                .set_client_rate_limit("web", Some((5, 10)), 200)
                .await
                .unwrap()
        );
        assert_eq!(
            store.list_clients().await.unwrap()[0].rate_limit,
            Some((5, 10))
        );
        assert!(store.set_client_rate_limit("web", None, 201).await.unwrap());
        assert_eq!(store.list_clients().await.unwrap()[0].rate_limit, None);

        assert!(
            !store
                .set_client_rate_limit("nobody", Some((1, 1)), 202)
                .await
                .unwrap()
        );
        assert!(store.revoke_client("web", 203).await.unwrap());
        assert!(
            !store
                .set_client_rate_limit("web", Some((1, 1)), 204)
                .await
                .unwrap()
        );
    }

    pub(crate) async fn client_upstream_limits_are_set_and_cleared(store: &dyn Store) {
        store
            .insert_client(&record("web", "ztv_aaaaaaaa"))
            .await
            .unwrap();

        assert!(
            store
                .set_client_upstream_limit("web", Some(600), 200)
                .await
                .unwrap()
        );
        assert_eq!(
            store.list_clients().await.unwrap()[0].upstream_per_minute,
            Some(600)
        );
        assert!(
            store
                .set_client_upstream_limit("web", None, 201)
                .await
                .unwrap()
        );
        assert_eq!(
            store.list_clients().await.unwrap()[0].upstream_per_minute,
            None
        );
        assert!(
            !store
                .set_client_upstream_limit("nobody", Some(1), 202)
                .await
                .unwrap()
        );
    }

    pub(crate) async fn audit_events_are_listed_newest_first_by_caller_and_pruned(
        store: &dyn Store,
    ) {
        let event = |at_ms: i64, caller: Option<&str>| AuditEvent {
            at_ms,
            request_id: Some(format!("r{at_ms}").into()),
            caller: caller.map(Arc::from),
            route: "POST /v1/meeting-sdk/signature".into(),
            account: Some("prod".into()),
            target_user: None,
            target: Some("123456789".into()),
            outcome: "issued".into(),
            status: 200,
        };
        let events = [
            event(1_000, Some("web")),
            event(2_000, Some("svc")),
            event(3_000, Some("web")),
            event(4_000, None),
        ];
        store.append_audit(&events).await.unwrap();

        let all = store.list_audit(0, None, 100).await.unwrap();
        assert_eq!(
            all.iter().map(|e| e.at_ms).collect::<Vec<_>>(),
            [4_000, 3_000, 2_000, 1_000]
        );
        assert_eq!(all[3], events[0], "stored exactly as given");
        let web = store.list_audit(0, Some("web"), 100).await.unwrap();
        assert_eq!(
            web.iter().map(|e| e.at_ms).collect::<Vec<_>>(),
            [3_000, 1_000]
        );
        assert_eq!(store.list_audit(2_500, None, 100).await.unwrap().len(), 2);
        assert_eq!(store.list_audit(0, None, 1).await.unwrap()[0].at_ms, 4_000);

        assert_eq!(store.prune_audit(2_500).await.unwrap(), 2);
        assert_eq!(store.list_audit(0, None, 100).await.unwrap().len(), 2);

        // A writer's batch spans several INSERT statements of every shape; every event
        // lands, in order.
        let batch: Vec<_> = (0..(2 * AUDIT_ROWS_PER_INSERT as i64 + 7))
            .map(|i| event(10_000 + i, Some("bulk")))
            .collect();
        store.append_audit(&batch).await.unwrap();
        let bulk = store.list_audit(0, Some("bulk"), 10_000).await.unwrap();
        assert_eq!(bulk.len(), batch.len());
        assert!(bulk.iter().rev().eq(batch.iter()));
    }

    pub(crate) async fn oauth_states_are_taken_once(store: &dyn Store) {
        let state = OAuthState {
            account: "prod".into(),
            caller: "web".into(),
            user_hint: Some("ann@example.com".into()),
            created_ms: 500_000,
            expires_at: 1_000,
        };
        let anonymous = OAuthState {
            user_hint: None,
            ..state.clone()
        };
        store.insert_oauth_state("h1", &state, 10).await.unwrap();
        store
            .insert_oauth_state("h2", &anonymous, 10)
            .await
            .unwrap();

        assert_eq!(store.take_oauth_state("h1").await.unwrap(), Some(state));
        assert_eq!(store.take_oauth_state("h1").await.unwrap(), None);
        assert_eq!(store.take_oauth_state("h2").await.unwrap(), Some(anonymous));
        assert_eq!(store.take_oauth_state("unknown").await.unwrap(), None);
    }

    pub(crate) async fn oauth_states_are_bounded_per_caller_and_pruned_when_expired(
        store: &dyn Store,
    ) {
        let state = |caller: &str, created_ms: i64, expires_at: i64| OAuthState {
            account: "prod".into(),
            caller: caller.into(),
            user_hint: None,
            created_ms,
            expires_at,
        };
        // "web" makes five with room for three: its two oldest go; "svc"'s one stays.
        store
            .insert_oauth_state("svc", &state("svc", 1, 2_000), 3)
            .await
            .unwrap();
        for n in 1..=5 {
            store
                .insert_oauth_state(&format!("web{n}"), &state("web", n, 1_000 + n), 3)
                .await
                .unwrap();
        }
        for gone in ["web1", "web2"] {
            assert_eq!(store.take_oauth_state(gone).await.unwrap(), None, "{gone}");
        }
        assert!(store.take_oauth_state("web3").await.unwrap().is_some());

        // Expired before 1 005: web4 (1 004); web5 (1 005) and svc (2 000) stay.
        assert_eq!(store.prune_oauth_states(1_005).await.unwrap(), 1);
        assert_eq!(store.take_oauth_state("web4").await.unwrap(), None);
        assert!(store.take_oauth_state("web5").await.unwrap().is_some());
        assert!(store.take_oauth_state("svc").await.unwrap().is_some());
    }

    pub(crate) async fn grants_are_never_found_by_a_unicode_case_fold(store: &dyn Store) {
        store
            .put_grant(&grant("u1", "kate@example.com"), 100)
            .await
            .unwrap();
        // What a Unicode lower-casing would fold to kate's email (KELVIN SIGN) cannot even be
        // a ZoomUser; its nearest valid neighbours do not find her grant.
        assert!(ZoomUser::parse("\u{212A}ate@example.com").is_err());
        for other in [
            "kate@example.co",
            "ate@example.com",
            "kate@example.com.evil",
        ] {
            assert_eq!(store.find_grant("prod", &user(other)).await.unwrap(), None);
            assert_eq!(
                store.delete_grant("prod", &user(other)).await.unwrap(),
                None
            );
        }
        assert_eq!(find(store, "KATE@example.com").await.zoom_user_id, "u1");
    }

    pub(crate) async fn grants_are_found_by_user_id_or_email_in_any_case(store: &dyn Store) {
        store
            .put_grant(&grant("u1", "Ann@Example.COM"), 100)
            .await
            .unwrap();

        let by_id = find(store, "u1").await;
        let by_email = find(store, "aNN@example.com").await;

        assert_eq!(by_id, by_email);
        assert_eq!(
            by_id,
            GrantRow {
                email: "ann@example.com".into(),
                version: 1,
                ..grant("u1", "")
            }
        );
        // Zoom user IDs are compared with ASCII case folded too: one identity, one rule.
        assert_eq!(find(store, "U1").await, by_id);
        assert_eq!(store.find_grant("other", &user("u1")).await.unwrap(), None);
        assert_eq!(
            store
                .find_grant("prod", &user("bob@example.com"))
                .await
                .unwrap(),
            None
        );
    }

    pub(crate) async fn a_new_grant_replaces_the_old_one_and_clears_its_state(store: &dyn Store) {
        store
            .put_grant(&grant("u1", "ann@example.com"), 100)
            .await
            .unwrap();
        assert!(
            store
                .claim_refresh("prod", "u1", 1, 500, 100)
                .await
                .unwrap()
        );
        store.mark_needs_reauth("prod", "u1", 101).await.unwrap();

        let newer = GrantRow {
            email: "ann@new.example.com".into(),
            refresh_token: b"r2".to_vec(),
            access_token: b"a2".to_vec(),
            access_expires_at: 2_000,
            scopes: "user:read:zak meeting:read".into(),
            ..grant("u1", "")
        };
        store.put_grant(&newer, 102).await.unwrap();

        let stored = find(store, "u1").await;
        assert_eq!(stored.version, 4);
        assert_eq!(stored.refreshing_until, None);
        assert!(!stored.needs_reauth);
        assert_eq!(
            stored,
            GrantRow {
                version: 4,
                ..newer
            }
        );
        assert_eq!(
            store
                .find_grant("prod", &user("ann@example.com"))
                .await
                .unwrap(),
            None
        );
    }

    pub(crate) async fn of_many_claims_on_one_version_exactly_one_wins(store: &dyn Store) {
        store
            .put_grant(&grant("u1", "ann@example.com"), 100)
            .await
            .unwrap();

        // Concurrent, each on its own connection where the backend has several.
        let claims = join_all((0..8).map(|_| store.claim_refresh("prod", "u1", 1, 500, 100))).await;

        let won = claims.into_iter().filter(|c| *c.as_ref().unwrap()).count();
        assert_eq!(won, 1);
        let stored = find(store, "u1").await;
        assert_eq!(stored.version, 2);
        assert_eq!(stored.refreshing_until, Some(500));
        // A stale version never wins, even with the lease gone.
        assert!(
            !store
                .claim_refresh("prod", "u1", 1, 900, 600)
                .await
                .unwrap()
        );
        assert!(
            !store
                .claim_refresh("prod", "nobody", 1, 900, 600)
                .await
                .unwrap()
        );
    }

    pub(crate) async fn a_live_lease_blocks_a_claim_and_an_expired_one_does_not(store: &dyn Store) {
        store
            .put_grant(&grant("u1", "ann@example.com"), 100)
            .await
            .unwrap();
        assert!(
            store
                .claim_refresh("prod", "u1", 1, 130, 100)
                .await
                .unwrap()
        );

        // Even at the current version, a lease that runs until 130 holds at 120 and at 130...
        assert!(
            !store
                .claim_refresh("prod", "u1", 2, 150, 120)
                .await
                .unwrap()
        );
        assert!(
            !store
                .claim_refresh("prod", "u1", 2, 160, 130)
                .await
                .unwrap()
        );
        // ...and not after (the refresher crashed).
        assert!(
            store
                .claim_refresh("prod", "u1", 2, 170, 131)
                .await
                .unwrap()
        );

        let stored = find(store, "u1").await;
        assert_eq!(stored.version, 3);
        assert_eq!(stored.refreshing_until, Some(170));
    }

    pub(crate) async fn refreshed_tokens_are_stored_only_at_the_claimed_version(store: &dyn Store) {
        store
            .put_grant(&grant("u1", "ann@example.com"), 100)
            .await
            .unwrap();
        assert!(
            store
                .claim_refresh("prod", "u1", 1, 130, 100)
                .await
                .unwrap()
        );

        assert!(
            !store
                .store_refreshed("prod", "u1", 1, b"r-stale", b"a-stale", 9_999, 101)
                .await
                .unwrap()
        );
        assert!(
            store
                .store_refreshed("prod", "u1", 2, b"r2", b"a2", 4_600, 102)
                .await
                .unwrap()
        );
        // The claimed version is spent.
        assert!(
            !store
                .store_refreshed("prod", "u1", 2, b"r3", b"a3", 5_000, 103)
                .await
                .unwrap()
        );

        let stored = find(store, "u1").await;
        assert_eq!(stored.refresh_token, b"r2");
        assert_eq!(stored.access_token, b"a2");
        assert_eq!(stored.access_expires_at, 4_600);
        assert_eq!(stored.version, 3);
        assert_eq!(stored.refreshing_until, None);
        // The next refresh needs no wait.
        assert!(
            store
                .claim_refresh("prod", "u1", 3, 200, 104)
                .await
                .unwrap()
        );
    }

    pub(crate) async fn a_released_lease_lets_the_next_claim_in_at_once(store: &dyn Store) {
        store
            .put_grant(&grant("u1", "ann@example.com"), 100)
            .await
            .unwrap();
        assert!(
            store
                .claim_refresh("prod", "u1", 1, 500, 100)
                .await
                .unwrap()
        );

        // A stale release does nothing.
        store.release_refresh("prod", "u1", 1).await.unwrap();
        assert_eq!(find(store, "u1").await.refreshing_until, Some(500));

        store.release_refresh("prod", "u1", 2).await.unwrap();

        let stored = find(store, "u1").await;
        assert_eq!(stored.refreshing_until, None);
        assert_eq!(stored.version, 2);
        assert_eq!(stored.refresh_token, grant("u1", "").refresh_token);
        assert!(
            store
                .claim_refresh("prod", "u1", 2, 600, 101)
                .await
                .unwrap()
        );
    }

    pub(crate) async fn a_grant_marked_for_reauthorisation_says_so(store: &dyn Store) {
        store
            .put_grant(&grant("u1", "ann@example.com"), 100)
            .await
            .unwrap();
        assert!(
            store
                .claim_refresh("prod", "u1", 1, 500, 100)
                .await
                .unwrap()
        );

        store.mark_needs_reauth("prod", "u1", 101).await.unwrap();

        let stored = find(store, "u1").await;
        assert!(stored.needs_reauth);
        assert_eq!(stored.refreshing_until, None);
        assert_eq!(stored.version, 3);
        // The refresher's claim is spent.
        assert!(
            !store
                .store_refreshed("prod", "u1", 2, b"r2", b"a2", 4_600, 102)
                .await
                .unwrap()
        );
    }

    pub(crate) async fn a_deleted_grant_names_its_user_and_is_gone(store: &dyn Store) {
        store
            .put_grant(&grant("u1", "Ann@Example.com"), 100)
            .await
            .unwrap();
        store
            .put_grant(&grant("u2", "bob@example.com"), 100)
            .await
            .unwrap();

        assert_eq!(
            store
                .delete_grant("prod", &user("ANN@example.com"))
                .await
                .unwrap(),
            Some(("u1".into(), "ann@example.com".into()))
        );
        assert_eq!(store.find_grant("prod", &user("u1")).await.unwrap(), None);
        assert_eq!(
            store
                .delete_grant("prod", &user("ann@example.com"))
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store.delete_grant("other", &user("u2")).await.unwrap(),
            None
        );
        assert_eq!(
            store.delete_grant("prod", &user("u2")).await.unwrap(),
            Some(("u2".into(), "bob@example.com".into()))
        );
        assert_eq!(
            store
                .find_grant("prod", &user("bob@example.com"))
                .await
                .unwrap(),
            None
        );
    }

    pub(crate) async fn a_reachable_store_answers_ping(store: &dyn Store) {
        store.ping().await.unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(count: usize) -> Vec<AuditEvent> {
        (0..count)
            .map(|i| AuditEvent {
                at_ms: i as i64,
                request_id: None,
                caller: None,
                route: "GET /v1/x".into(),
                account: None,
                target_user: None,
                target: None,
                outcome: "issued".into(),
                status: 200,
            })
            .collect()
    }

    #[test]
    fn audit_batches_split_into_a_few_fixed_statement_sizes_in_order() {
        for (count, sizes) in [
            (0, vec![]),
            (1, vec![1]),
            (7, vec![4, 2, 1]),
            (64, vec![64]),
            (65, vec![64, 1]),
            (500, vec![64, 64, 64, 64, 64, 64, 64, 32, 16, 4]),
        ] {
            let batch = events(count);
            let chunks: Vec<&[AuditEvent]> = audit_chunks(&batch).collect();
            let got: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
            assert_eq!(got, sizes, "{count} events");
            let order: Vec<i64> = chunks
                .iter()
                .flat_map(|c| c.iter().map(|e| e.at_ms))
                .collect();
            assert_eq!(order, (0..count as i64).collect::<Vec<_>>());
        }
        // Whatever the batch, only seven shapes.
        let shapes: std::collections::BTreeSet<usize> = (0..=1000)
            .flat_map(|n| {
                audit_chunks(&events(n))
                    .map(<[AuditEvent]>::len)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(
            shapes.into_iter().collect::<Vec<_>>(),
            [1, 2, 4, 8, 16, 32, 64]
        );
    }

    #[test]
    fn audit_inserts_bind_nine_values_per_event_in_each_databases_spelling() {
        assert_eq!(
            audit_insert_sql(2, Placeholders::Question),
            "INSERT INTO audit_events (at_ms, request_id, caller, route, account, target_user, \
             target, outcome, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        );
        let numbered = audit_insert_sql(2, Placeholders::Numbered);
        assert!(numbered.ends_with(
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9), \
             ($10, $11, $12, $13, $14, $15, $16, $17, $18)"
        ));
        for rows in [1, 2, 4, 8, 16, 32, 64] {
            for placeholders in [Placeholders::Question, Placeholders::Numbered] {
                let sql = audit_insert_sql(rows, placeholders);
                assert_eq!(sql.matches('(').count(), rows + 1);
                let bound = match placeholders {
                    Placeholders::Question => sql.matches('?').count(),
                    Placeholders::Numbered => sql.matches('$').count(),
                };
                assert_eq!(bound, rows * AUDIT_VALUES_PER_EVENT);
            }
            // Built once: the same text every time.
            assert!(std::ptr::eq(
                audit_insert_sql(rows, Placeholders::Question),
                audit_insert_sql(rows, Placeholders::Question)
            ));
        }
        assert!(audit_insert_sql(64, Placeholders::Numbered).ends_with("$576)"));
    }
}
