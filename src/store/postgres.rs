//! The PostgreSQL store: shared by several replicas. Migrations in `migrations/postgres`,
//! applied at start under sqlx's advisory lock, so replicas that start together take turns.
//! Its statements are [`super::sql`]'s, with numbered placeholders.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::StoreError;
use super::audit::Placeholders;
use super::sql::{numbered, sql_store};

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

    const PLACEHOLDERS: Placeholders = Placeholders::Numbered;

    /// "C": byte order, as SQLite sorts, whatever the database's locale.
    const CLIENTS_BY_NAME: &str = "SELECT * FROM api_clients ORDER BY name COLLATE \"C\"";

    /// A statement with its placeholders numbered. None of these runs per request (the audit
    /// INSERTs, which follow the traffic, have texts built once), so numbering on each call
    /// costs nothing that matters next to the round trip.
    fn sql(text: &'static str) -> Cow<'static, str> {
        Cow::Owned(numbered(text))
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    /// A second live client of the same name, inserted by another process between our check
    /// and our insert, is the same mistake as one found by the check.
    fn duplicate_name(error: sqlx::Error, name: &str) -> StoreError {
        match &error {
            sqlx::Error::Database(db) if db.constraint() == Some("api_clients_pkey") => {
                StoreError::Duplicate(name.to_owned())
            }
            _ => StoreError::Database(error),
        }
    }
}

sql_store!(PostgresStore);

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

    crate::store::suite::store_suite!(open);

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
