//! The SQLite store: one file, WAL, for a single process. Migrations in `migrations/sqlite`.
//! The folder it creates is 0700 and the files 0600: tokens and keys' hashes are in them.
//! Its statements are [`super::sql`]'s, as written.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use super::StoreError;
use super::audit::Placeholders;
use super::sql::sql_store;

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        let file = options.get_filename().to_path_buf();
        if !is_in_memory(&file) {
            create_private(&file)?;
            for path in readable_by_others(&file) {
                tracing::warn!(
                    path = %path.display(),
                    "the SQLite store is readable by other users of this machine; chmod 600 it"
                );
            }
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

fn is_in_memory(file: &Path) -> bool {
    file.as_os_str().is_empty() || file.to_string_lossy().contains(":memory:")
}

/// Creates the store's folder (0700, with any missing parents) and file (0600) before SQLite
/// opens it; SQLite gives the `-wal` and `-shm` files it makes the mode of the database file.
/// An existing folder or file is left as it is.
fn create_private(file: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let folder_error = |path: &Path, source| StoreError::Folder {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = file.parent()
        && !parent.as_os_str().is_empty()
        && !parent.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| folder_error(parent, e))?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(folder_error(file, e)),
    }
}

/// The store's files (database, `-wal`, `-shm`) that other users may read.
pub fn readable_by_others(file: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let mut path = file.as_os_str().to_owned();
            path.push(suffix);
            PathBuf::from(path)
        })
        .filter(|path| std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o044 != 0))
        .collect()
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

    crate::store::suite::store_suite!(open);
}
