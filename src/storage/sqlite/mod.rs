//! SQLite storage: the embedded database of a single node. WAL journal with
//! `synchronous=FULL`, so a committed message survives a power cut.

mod messages;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use super::{BatchWriter, Result, StorageError, Write};

pub struct SqliteStorage {
    /// Reads: several connections, which WAL lets run beside the writer.
    pool: SqlitePool,
    /// Every write goes through this one connection. SQLite has one writer
    /// at a time anyway; with one connection the writers wait their turn in
    /// the pool's queue instead of polling the database lock, where a claim
    /// could wait a second while group commits kept taking the lock.
    writer: SqlitePool,
}

impl SqliteStorage {
    /// Open (creating if needed) the database file named by `url`.
    pub async fn connect(url: &str, max_connections: u32, busy_timeout: Duration) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StorageError::Unavailable(format!("{url}: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(busy_timeout);
        if let Some(dir) = Path::new(options.get_filename()).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StorageError::Unavailable(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(busy_timeout)
            .connect_with(options.clone())
            .await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(busy_timeout)
            .connect_with(options)
            .await?;
        Ok(Self { pool, writer })
    }

    /// The connection every write goes through.
    pub(crate) fn writer(&self) -> &SqlitePool {
        &self.writer
    }
}

#[async_trait]
impl BatchWriter for SqliteStorage {
    async fn apply(&self, batch: &[Write]) -> Result<Vec<bool>> {
        messages::apply(&self.writer, batch).await
    }
}

// SQLite has one writer: no row locking needed when claiming.
super::shared::impl_storage!(
    SqliteStorage,
    sqlx::Sqlite,
    migrator: sqlx::migrate!("migrations/sqlite"),
    single_node: true,
    claim_lock: "",
    greatest: "MAX",
);
super::outbox::impl_outbox!(SqliteStorage, sqlx::Sqlite, claim_lock: "");
super::notices::impl_notices!(SqliteStorage, sqlx::Sqlite);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Storage;

    #[tokio::test]
    async fn wal_and_full_sync_are_on() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("sub/dir/t.db").display());
        let db = SqliteStorage::connect(&url, 2, Duration::from_secs(1))
            .await
            .unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL");
        db.migrate().await.unwrap();
        db.migrate().await.unwrap(); // idempotent
    }
}
