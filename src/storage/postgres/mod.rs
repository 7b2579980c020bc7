//! PostgreSQL storage: one database shared by many relay nodes. Nodes take
//! due deliveries with `FOR UPDATE SKIP LOCKED` and a lease (owner, expiry),
//! so each delivery is worked by one node at a time and a dead node's work
//! goes to the others once its leases lapse.

mod batch;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use sqlx::pool::PoolConnection;

use super::sql::Backend;
use std::sync::Arc;

use super::{BatchWriter, Keyring, Result, StorageError, Write};

/// Storage on PostgreSQL, shared by many relay nodes: a pool for reads
/// and writes, and the group committer's own connection.
pub struct PgStorage {
    pool: PgPool,
    committer: CommitterConnection,
    keyring: Arc<Keyring>,
}

/// The group committer's own connection, opened on first use and again
/// after it fails. Not taken from the pool: the pool checks a connection
/// it gets back with a round trip, from a task of its own, and under load
/// the next batch waited for it.
struct CommitterConnection {
    /// Taken out for a batch and put back after it (no lock is held while
    /// the batch runs); only the committer task writes batches.
    idle: std::sync::Mutex<Option<PgConnection>>,
    options: PgConnectOptions,
    connect_timeout: Duration,
}

impl CommitterConnection {
    async fn apply(&self, batch: &[Write]) -> Result<Vec<bool>> {
        let idle = self.idle.lock().expect("not poisoned").take();
        let mut conn = match idle {
            Some(conn) => conn,
            None => {
                let connect = PgConnection::connect_with(&self.options);
                tokio::time::timeout(self.connect_timeout, connect)
                    .await
                    .map_err(|_| StorageError::Unavailable("connecting timed out".into()))??
            }
        };
        let result = batch::apply(&mut conn, batch).await;
        // A broken connection is dropped: the next batch connects afresh.
        if result.is_ok() || conn.ping().await.is_ok() {
            *self.idle.lock().expect("not poisoned") = Some(conn);
        }
        result
    }
}

impl PgStorage {
    /// Connect lazily: the relay starts, and answers 451, while the database
    /// is down, and the pool reconnects by itself when it returns.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StorageError::Unavailable(format!("storage.url: {e}")))?
            .application_name("ct-relay");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(acquire_timeout)
            // No ping before every query: a dropped connection fails its
            // query (that client gets 451) and the pool replaces it.
            .test_before_acquire(false)
            .connect_lazy_with(options.clone());
        let committer = CommitterConnection {
            idle: std::sync::Mutex::new(None),
            // Its one statement is planned once (see batch.rs).
            options: options.options([
                ("plan_cache_mode", "force_generic_plan"),
                ("enable_seqscan", "off"),
            ]),
            connect_timeout: acquire_timeout,
        };
        Ok(Self {
            pool,
            committer,
            keyring: Arc::new(Keyring::default()),
        })
    }

    /// A connection for reads.
    pub(crate) async fn reader(&self) -> Result<PoolConnection<sqlx::Postgres>> {
        Ok(self.pool.acquire().await?)
    }

    /// PostgreSQL locks rows, not the database: writes share the pool.
    pub(crate) async fn writer(&self) -> Result<PoolConnection<sqlx::Postgres>> {
        Ok(self.pool.acquire().await?)
    }
}

#[async_trait]
impl BatchWriter for PgStorage {
    async fn apply(&self, batch: &[Write]) -> Result<Vec<bool>> {
        self.committer.apply(&self.keyring.seal_writes(batch)).await
    }
}

impl PgStorage {
    /// Seal and open values with `keyring` (see `encryption`).
    pub(crate) fn with_keyring(mut self, keyring: Arc<Keyring>) -> Self {
        self.keyring = keyring;
        self
    }
}

impl Backend for PgStorage {
    type Conn = PgConnection;
    type Reader<'a> = PoolConnection<sqlx::Postgres>;
    type Writer<'a> = PoolConnection<sqlx::Postgres>;
    type Tx<'c> = sqlx::Transaction<'c, sqlx::Postgres>;

    const SINGLE_NODE: bool = false;
    const CLAIM_LOCK: &'static str = "FOR UPDATE SKIP LOCKED";
    const GREATEST: &'static str = "GREATEST";
    const ROWS_PER_STATEMENT: usize = 500;
    const NUMBERED_PLACEHOLDERS: bool = true;

    fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    async fn reader(&self) -> Result<PoolConnection<sqlx::Postgres>> {
        PgStorage::reader(self).await
    }

    async fn writer(&self) -> Result<PoolConnection<sqlx::Postgres>> {
        PgStorage::writer(self).await
    }

    async fn begin_write(conn: &mut PgConnection) -> Result<Self::Tx<'_>> {
        Ok(conn.begin().await?)
    }

    async fn commit(tx: Self::Tx<'_>) -> Result<()> {
        Ok(tx.commit().await?)
    }

    /// Two nodes creating participants of one order take turns: a lock
    /// per order, taken in the order given (sorted by the caller, so two
    /// transactions never wait on each other in a circle), held until
    /// the transaction ends.
    async fn lock_orders(conn: &mut PgConnection, orders: &[(&str, &str)]) -> Result<()> {
        let (stores, ids): (Vec<&str>, Vec<&str>) = orders.iter().copied().unzip();
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtext(s), hashtext(o))
             FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS l(s, o, n) ORDER BY n",
        )
        .bind(stores)
        .bind(ids)
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn run_migrations(&self) -> Result<()> {
        sqlx::migrate!("migrations/postgres")
            .run_direct(&mut *PgStorage::writer(self).await?)
            .await
            .map_err(|e| StorageError::Migration(e.to_string()))
    }
}

#[async_trait::async_trait]
impl super::Maintenance for PgStorage {
    /// The tables that grow with traffic are vacuumed and analyzed here,
    /// as autovacuum would: on a server with autovacuum off, the rows a
    /// purge deletes would never give their space to new mail, and without
    /// statistics a timeline page's deliveries were read with a sequential
    /// scan. Tables with few rows are left alone: statistics of an empty
    /// table (right after an import, before the first mail) made the
    /// committer's plan slow until the next analysis.
    async fn compact(&self, _shrink: bool) -> Result<()> {
        let mut conn = self.writer().await?;
        let grown: Vec<String> = sqlx::query_scalar(
            "SELECT relname::text FROM pg_stat_user_tables
             WHERE relname IN ('participants', 'messages', 'timeline_entries', 'deliveries',
                               'delivery_attempts', 'webhook_events')
               AND n_live_tup + n_dead_tup >= 1000",
        )
        .fetch_all(&mut *conn)
        .await?;
        for table in grown {
            // One statement, outside any transaction block.
            sqlx::query(&format!("VACUUM (ANALYZE) {table}"))
                .persistent(false)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}
