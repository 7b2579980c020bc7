//! PostgreSQL storage: one database shared by many relay nodes. Nodes take
//! due deliveries with `FOR UPDATE SKIP LOCKED` and a lease (owner, expiry),
//! so each delivery is worked by one node at a time and a dead node's work
//! goes to the others once its leases lapse.

mod batch;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use super::{BatchWriter, Result, StorageError, Write};

pub struct PgStorage {
    pool: PgPool,
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
            .connect_lazy_with(options);
        Ok(Self { pool })
    }

    /// PostgreSQL locks rows, not the database: writes share the pool.
    pub(crate) async fn writer(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>> {
        Ok(self.pool.acquire().await?)
    }
}

#[async_trait]
impl BatchWriter for PgStorage {
    async fn apply(&self, batch: &[Write]) -> Result<Vec<bool>> {
        batch::apply(&self.pool, batch).await
    }
}

super::shared::impl_storage!(
    PgStorage,
    sqlx::Postgres,
    migrator: sqlx::migrate!("migrations/postgres"),
    single_node: false,
    claim_lock: "FOR UPDATE SKIP LOCKED",
    greatest: "GREATEST",
);
super::outbox::impl_outbox!(PgStorage, sqlx::Postgres, claim_lock: "FOR UPDATE SKIP LOCKED");
super::notices::impl_notices!(PgStorage, sqlx::Postgres);
