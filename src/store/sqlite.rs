//! The SQLite store: one file, WAL, for a single process. Migrations in `migrations/sqlite`.
//! Its statements are [`super::sql`]'s, as written.

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use super::sql::sql_store;
use super::{Placeholders, StoreError};

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

    const PLACEHOLDERS: Placeholders = Placeholders::Question;

    const CLIENTS_BY_NAME: &str = "SELECT * FROM api_clients ORDER BY name";

    /// The statements are written in SQLite's spelling.
    fn sql(text: &'static str) -> Cow<'static, str> {
        Cow::Borrowed(text)
    }

    /// IMMEDIATE takes the write lock up front (waiting up to the busy timeout): a deferred
    /// transaction that reads and then writes fails at once ("database is locked") when
    /// another connection, such as the audit writer, wrote in between.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// Under IMMEDIATE no other writer comes between the check for a live client of the same
    /// name and the insert, so a failed insert is a database error like any other.
    fn duplicate_name(error: sqlx::Error, _name: &str) -> StoreError {
        StoreError::Database(error)
    }
}

sql_store!(SqliteStore);

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
