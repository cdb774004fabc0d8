//! The SQLite store: the embedded default for development and a single process.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

/// Connections in a SQLite file (or in memory, for tests).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database a `sqlite:` URL names.
    pub async fn connect(url: &str) -> Result<Self, crate::store::contract::StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        // An in-memory database lives in one connection; a file can be shared by a few.
        let max = if url.contains(":memory:") { 1 } else { 4 };
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }
}

super::sql::impl_store!(
    SqliteStore,
    sqlx::Sqlite,
    "sqlite",
    sqlx::migrate!("./migrations/sqlite"),
    "select strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
    "",
    "(case when json_type(metadata, '$.data_access_expires_at') in ('integer', 'real') then json_extract(metadata, '$.data_access_expires_at') end)"
);

super::posts::impl_post_store!(crate::store::sqlite::SqliteStore, sqlx::Sqlite, "");
