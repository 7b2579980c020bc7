//! SQLite storage: the embedded database of a single node. WAL journal with
//! `synchronous=FULL`, so a committed message survives a power cut.

mod batch;
mod checkpoint;
mod readers;

#[cfg(test)]
use std::path::Path;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use checkpoint::{Checkpointer, WalBound};
use readers::{Reader, Readers};

use super::sql::Backend;
use super::{BatchWriter, Keyring, Result, StorageError, Write};
use crate::private_files;

/// The writer's page cache: a transaction that touches more pages than
/// the cache holds writes them to the log twice or more (a bulk import's
/// random aliases touch many index pages). Readers keep SQLite's default.
const WRITER_CACHE_KIB: u32 = 64 * 1024;

/// Storage on the embedded SQLite database of a single node: one writer
/// connection taken in turns, reading connections beside it, and a
/// checkpointer keeping the write-ahead log bounded.
pub struct SqliteStorage {
    readers: Readers,
    writer: Arc<Writer>,
    checkpointer: Checkpointer,
    keyring: Arc<Keyring>,
}

/// The one connection every write goes through. SQLite has one writer at a
/// time anyway; with one connection, writers wait their turn here (in
/// order) instead of polling the database lock, where a claim could wait a
/// second while group commits kept taking it. The lock is that turn, held
/// for one write as a pool of one would lend its connection; nothing else
/// is behind it. It is not a pool: a pool checks each connection it gets
/// back with a round trip to the driver's thread, from a task of its own,
/// and the next writer waited for that task (half a millisecond per group
/// commit under load).
struct Writer {
    state: Mutex<WriterState>,
    /// How long a write waits for its turn before the database counts as
    /// unavailable (`storage.busy_timeout`, as for the database lock).
    wait: Duration,
}

/// The writer connection, and whether a write that began a transaction of
/// its own in its SQL text was dropped before it ended it (see `batch`).
pub(crate) struct WriterState {
    conn: SqliteConnection,
    maybe_in_transaction: bool,
}

impl SqliteStorage {
    /// Open (creating if needed) the database file named by `url`; its
    /// write-ahead log is kept under `wal_limit` bytes (see `checkpoint`).
    /// A new database reuses and returns the pages purges free
    /// (`auto_vacuum = INCREMENTAL`; see `compact`).
    pub async fn connect(
        url: &str,
        max_connections: u32,
        busy_timeout: Duration,
        wal_limit: u64,
    ) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StorageError::Unavailable(format!("{url}: {e}")))?
            .create_if_missing(true)
            .auto_vacuum(SqliteAutoVacuum::Incremental)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(busy_timeout)
            .pragma("journal_size_limit", wal_limit.to_string())
            // Deleted rows are overwritten, not left in free pages: an
            // erased person's address must not survive in the file.
            .pragma("secure_delete", "on");
        let file = options.get_filename().to_path_buf();
        if let Some(dir) = file.parent() {
            if !dir.as_os_str().is_empty() {
                private_files::create_dir(dir).map_err(|e| {
                    StorageError::Unavailable(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
        }
        // The file holds real addresses: 0600, and its WAL follows its mode.
        if file.as_os_str() != ":memory:" {
            private_files::create_empty_if_missing(&file).map_err(|e| {
                StorageError::Unavailable(format!("cannot create {}: {e}", file.display()))
            })?;
            if let Some(mode) = private_files::mode_granting(&file, private_files::GROUP_OR_OTHERS)
            {
                tracing::warn!(
                    file = %file.display(),
                    mode = format!("{mode:o}"),
                    "the database file can be read by others than the relay's user; chmod 600 it"
                );
            }
        }
        let writer = Arc::new(Writer {
            state: Mutex::new(WriterState {
                // Checkpoints are the checkpointer's, off the writer's path.
                conn: SqliteConnection::connect_with(
                    &options
                        .clone()
                        .pragma("wal_autocheckpoint", "0")
                        .pragma("cache_size", format!("-{}", WRITER_CACHE_KIB)),
                )
                .await?,
                maybe_in_transaction: false,
            }),
            wait: busy_timeout,
        });
        let wal = WalBound {
            path: PathBuf::from(format!("{}-wal", options.get_filename().display())),
            limit: wal_limit,
        };
        let checkpointer = Checkpointer::start(options.clone(), wal, writer.clone());
        Ok(Self {
            readers: Readers::new(options, max_connections.max(2) as usize, busy_timeout),
            writer,
            checkpointer,
            keyring: Arc::new(Keyring::default()),
        })
    }

    /// For unit tests: a migrated database at `t.db` in `dir`.
    #[cfg(test)]
    pub(crate) async fn migrated_in(dir: &Path, busy_timeout: Duration) -> Self {
        Self::migrated_with_wal_limit(dir, busy_timeout, 64 << 20).await
    }

    /// For unit tests: as `migrated_in`, the log kept under `wal_limit` bytes.
    #[cfg(test)]
    pub(crate) async fn migrated_with_wal_limit(
        dir: &Path,
        busy_timeout: Duration,
        wal_limit: u64,
    ) -> Self {
        let url = format!("sqlite://{}", dir.join("t.db").display());
        let db = Self::connect(&url, 2, busy_timeout, wal_limit)
            .await
            .unwrap();
        crate::storage::Storage::migrate(&db).await.unwrap();
        db
    }

    /// A connection for reads.
    pub(crate) async fn reader(&self) -> Result<Reader<'_>> {
        self.readers.get().await
    }

    /// The connection every write goes through, once it is this caller's
    /// turn. Giving it back tells the checkpointer something was written.
    pub(crate) async fn writer(&self) -> Result<WriterTurn<'_>> {
        Ok(WriterTurn {
            conn: MutexGuard::map(self.writer_state().await?, |w| &mut w.conn),
            checkpointer: &self.checkpointer,
        })
    }

    async fn writer_state(&self) -> Result<MutexGuard<'_, WriterState>> {
        self.writer.turn().await
    }
}

/// The writer connection lent for one write (see `SqliteStorage::writer`).
pub(crate) struct WriterTurn<'a> {
    conn: MappedMutexGuard<'a, SqliteConnection>,
    checkpointer: &'a Checkpointer,
}

impl std::ops::Deref for WriterTurn<'_> {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for WriterTurn<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

impl Drop for WriterTurn<'_> {
    fn drop(&mut self) {
        self.checkpointer.committed();
    }
}

impl Writer {
    /// The writer connection, once it is this caller's turn.
    async fn turn(&self) -> Result<MutexGuard<'_, WriterState>> {
        let mut state = tokio::time::timeout(self.wait, self.state.lock())
            .await
            .map_err(|_| StorageError::Unavailable("every write waits on a stalled one".into()))?;
        if state.maybe_in_transaction {
            // A batch was dropped mid-way: end the transaction it may have
            // left open ("no transaction is active" if it had not).
            let _ = sqlx::query("ROLLBACK").execute(&mut state.conn).await;
            state.maybe_in_transaction = false;
        }
        Ok(state)
    }
}

#[async_trait]
impl BatchWriter for SqliteStorage {
    async fn apply(&self, batch: &[Write]) -> Result<Vec<bool>> {
        let batch = self.keyring.seal_writes(batch);
        let applied = batch::apply(&mut *self.writer_state().await?, &batch).await?;
        self.checkpointer.committed();
        Ok(applied)
    }
}

impl SqliteStorage {
    /// Seal and open values with `keyring` (see `encryption`).
    pub(crate) fn with_keyring(mut self, keyring: Arc<Keyring>) -> Self {
        self.keyring = keyring;
        self
    }
}

impl Backend for SqliteStorage {
    type Conn = SqliteConnection;
    type Reader<'a> = Reader<'a>;
    type Writer<'a> = WriterTurn<'a>;
    type Tx<'c> = sqlx::Transaction<'c, sqlx::Sqlite>;

    const SINGLE_NODE: bool = true;
    // One writer: no row locking needed when claiming.
    const CLAIM_LOCK: &'static str = "";
    const GREATEST: &'static str = "MAX";
    const ROWS_PER_STATEMENT: usize = 256;
    const NUMBERED_PLACEHOLDERS: bool = false;

    fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    async fn reader(&self) -> Result<Reader<'_>> {
        SqliteStorage::reader(self).await
    }

    async fn writer(&self) -> Result<WriterTurn<'_>> {
        SqliteStorage::writer(self).await
    }

    /// A write transaction holds the write lock from its start: it never
    /// finds, at its first write, that the log was checkpointed and reset
    /// under the snapshot its reads saw (SQLITE_BUSY_SNAPSHOT).
    async fn begin_write(conn: &mut SqliteConnection) -> Result<Self::Tx<'_>> {
        Ok(conn.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn commit(tx: Self::Tx<'_>) -> Result<()> {
        Ok(tx.commit().await?)
    }

    /// One writer: nothing else creates participants meanwhile.
    async fn lock_orders(_: &mut SqliteConnection, _: &[(&str, &str)]) -> Result<()> {
        Ok(())
    }

    async fn run_migrations(&self) -> Result<()> {
        // `run` takes an `Acquire`, which a borrowed connection's future
        // cannot name here; sqlx offers `run_direct` for just that.
        sqlx::migrate!("migrations/sqlite")
            .run_direct(&mut *SqliteStorage::writer(self).await?)
            .await
            .map_err(|e| StorageError::Migration(e.to_string()))
    }
}

/// Free pages up to this share of the file are kept for the next writes
/// (a steady state of traffic and purge reuses them)...
const FREE_KEPT: i64 = 10;
/// ...and only past this share are the rest given back,
const FREE_RETURNED_PAST: i64 = 25;
/// this many pages (8 MiB) per transaction, so commits come in between and
/// the log stays short.
const PAGES_PER_VACUUM: i64 = 2048;

#[async_trait]
impl super::Maintenance for SqliteStorage {
    async fn compact(&self, shrink: bool) -> Result<()> {
        let (pages, free): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT page_count FROM pragma_page_count()),
                    (SELECT freelist_count FROM pragma_freelist_count())",
        )
        .fetch_one(&mut *self.writer().await?)
        .await?;
        let keep = pages * FREE_KEPT / 100;
        if shrink && free * 100 > pages * FREE_RETURNED_PAST {
            // Only a database made with auto_vacuum = INCREMENTAL shrinks;
            // an older one keeps its free pages for the next writes.
            let mut left = free - keep;
            while left > 0 {
                let step = left.min(PAGES_PER_VACUUM);
                sqlx::query(&format!("PRAGMA incremental_vacuum({step})"))
                    .execute(&mut *self.writer().await?)
                    .await?;
                left -= step;
            }
        }
        // The checkpointer's passive checkpoint may be running (it was just
        // told about the last write): then the log is busy for a moment,
        // and the writer's turn is given back while waiting it out.
        for _ in 0..100 {
            if checkpoint::checkpoint(&mut *self.writer().await?, "TRUNCATE").await? {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Storage;

    #[tokio::test]
    async fn wal_and_full_sync_are_on() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("sub/dir/t.db").display());
        let db = SqliteStorage::connect(&url, 2, Duration::from_secs(1), 64 << 20)
            .await
            .unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *db.reader().await.unwrap())
            .await
            .unwrap();
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *db.reader().await.unwrap())
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL");
        db.migrate().await.unwrap();
        db.migrate().await.unwrap(); // idempotent
    }

    /// A batch's text begins its own transaction; if its future is dropped
    /// before the text ends it, the next writer ends it, so its own write
    /// commits instead of joining a transaction nobody will commit.
    #[tokio::test]
    async fn a_transaction_left_open_by_a_dropped_batch_is_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStorage::migrated_in(dir.path(), Duration::from_secs(1)).await;
        {
            let mut w = db.writer_state().await.unwrap();
            w.maybe_in_transaction = true;
            sqlx::raw_sql("BEGIN IMMEDIATE; INSERT INTO stores (store, mask_mode, updated_at) VALUES ('gone', 'soft', 0);")
                .execute(&mut w.conn)
                .await
                .unwrap();
        }
        db.set_store_mode("acme", crate::alias::MaskMode::Soft)
            .await
            .unwrap();
        // Read on another connection: only what was committed.
        assert_eq!(
            db.store_mode("acme").await.unwrap(),
            crate::alias::MaskMode::Soft
        );
        assert_eq!(
            db.store_mode("gone").await.unwrap(),
            crate::alias::MaskMode::Hard
        );
    }
}
