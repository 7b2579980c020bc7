//! PostgreSQL storage: one database shared by many relay nodes. Nodes take
//! due deliveries with `FOR UPDATE SKIP LOCKED` and a lease (owner, expiry),
//! so each delivery is worked by one node at a time and a dead node's work
//! goes to the others once its leases lapse.

mod batch;
mod messages;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use super::rows::{self, to_ms, Columns, PARTICIPANT_COLUMNS};
use super::{
    BatchWriter, DeliveryJob, OrderExpiry, PurgeCounts, QueueEntry, Result, Storage, StorageError,
    StoreSummary, StoredMessage, TimelineEntry, Write,
};
use crate::alias::{MaskMode, Participant};
use sqlx::Row;

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

    async fn insert_participant<'e, E>(executor: E, p: &Participant) -> Result<()>
    where
        E: sqlx::Executor<'e, Database = sqlx::Postgres>,
    {
        sqlx::query(
            "INSERT INTO participants (alias_key, alias, store, order_id, role, email, mode, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (alias_key) DO NOTHING",
        )
        .bind(p.key())
        .bind(&p.alias)
        .bind(&p.store)
        .bind(&p.order)
        .bind(p.role.as_str())
        .bind(&p.email)
        .bind(p.mode.as_str())
        .bind(to_ms(p.created_at))
        .bind(to_ms(p.expires_at))
        .execute(executor)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl BatchWriter for PgStorage {
    async fn apply(&self, batch: &[Write]) -> Result<Vec<bool>> {
        batch::apply(&self.pool, batch).await
    }
}

#[async_trait]
impl Storage for PgStorage {
    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(|e| StorageError::Migration(e.to_string()))
    }

    fn single_node(&self) -> bool {
        false
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn message(&self, message_id: &str) -> Result<Option<StoredMessage>> {
        let row = sqlx::query("SELECT store, order_id, content FROM messages WHERE id = $1")
            .bind(message_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(StoredMessage {
                store: r.text("store")?,
                order: r.text("order_id")?,
                content: r.try_get("content")?,
            })
        })
        .transpose()
    }

    async fn store_mode(&self, store: &str) -> Result<MaskMode> {
        let row = sqlx::query("SELECT mask_mode FROM stores WHERE store = $1")
            .bind(store)
            .fetch_optional(&self.pool)
            .await?;
        row.map_or(Ok(MaskMode::Hard), |r| rows::mask_mode(&r, "mask_mode"))
    }

    async fn set_store_mode(&self, store: &str, mode: MaskMode) -> Result<()> {
        sqlx::query(
            "INSERT INTO stores (store, mask_mode, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (store) DO UPDATE SET mask_mode = excluded.mask_mode, updated_at = excluded.updated_at",
        )
        .bind(store)
        .bind(mode.as_str())
        .bind(to_ms(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn store_summary(&self, store: &str) -> Result<StoreSummary> {
        let row = sqlx::query(
            "SELECT (SELECT mask_mode FROM stores WHERE store = $1) AS mask_mode,
                    COUNT(*) AS aliases, COUNT(DISTINCT order_id) AS orders
             FROM participants WHERE store = $1",
        )
        .bind(store)
        .fetch_one(&self.pool)
        .await?;
        let configured = row.opt_text("mask_mode")?.is_some();
        Ok(StoreSummary {
            store: store.to_string(),
            mask_mode: if configured {
                rows::mask_mode(&row, "mask_mode")?
            } else {
                MaskMode::Hard
            },
            configured,
            aliases: row.int("aliases")? as u64,
            orders: row.int("orders")? as u64,
        })
    }

    async fn ensure_participants(&self, ps: &[Participant]) -> Result<Vec<Participant>> {
        let mut tx = self.pool.begin().await?;
        for p in ps {
            Self::insert_participant(&mut *tx, p).await?;
        }
        let sql = format!("SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE alias_key = $1");
        let mut stored = Vec::with_capacity(ps.len());
        for p in ps {
            let row = sqlx::query(&sql).bind(p.key()).fetch_one(&mut *tx).await?;
            stored.push(rows::participant(&row)?);
        }
        tx.commit().await?;
        Ok(stored)
    }

    async fn find_alias(&self, alias: &str) -> Result<Option<Participant>> {
        let sql = format!("SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE alias_key = $1");
        let row = sqlx::query(&sql)
            .bind(alias.to_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::participant).transpose()
    }

    async fn disable_alias(&self, alias: &str, now: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE participants SET disabled_at = COALESCE(disabled_at, $1) WHERE alias_key = $2",
        )
        .bind(to_ms(now))
        .bind(alias.to_lowercase())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn order_participants(&self, store: &str, order: &str) -> Result<Vec<Participant>> {
        let sql = format!(
            "SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE store = $1 AND order_id = $2 ORDER BY created_at"
        );
        let found = sqlx::query(&sql)
            .bind(store)
            .bind(order)
            .fetch_all(&self.pool)
            .await?;
        found.iter().map(rows::participant).collect()
    }

    async fn set_order_expiry(&self, store: &str, order: &str, expiry: OrderExpiry) -> Result<u64> {
        let sql = match expiry {
            OrderExpiry::NoLaterThan(_) => {
                "UPDATE participants SET expires_at = $1
                 WHERE store = $2 AND order_id = $3 AND expires_at > $1"
            }
            OrderExpiry::Until(_) => {
                "UPDATE participants SET expires_at = $1 WHERE store = $2 AND order_id = $3"
            }
        };
        let (OrderExpiry::NoLaterThan(at) | OrderExpiry::Until(at)) = expiry;
        let done = sqlx::query(sql)
            .bind(to_ms(at))
            .bind(store)
            .bind(order)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn stores_with_order(&self, order: &str) -> Result<Vec<String>> {
        let found = sqlx::query(
            "SELECT DISTINCT store FROM participants WHERE order_id = $1 ORDER BY store",
        )
        .bind(order)
        .fetch_all(&self.pool)
        .await?;
        found.iter().map(|r| r.text("store")).collect()
    }

    async fn claim_due(
        &self,
        node: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DeliveryJob>> {
        messages::claim_due(&self.pool, node, now, lease_until, limit).await
    }

    async fn message_content(&self, message_id: &str) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT content FROM messages WHERE id = $1")
                .bind(message_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn release_leases(&self, node: Option<&str>) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL
             WHERE lease_owner IS NOT NULL AND ($1::text IS NULL OR lease_owner = $1)",
        )
        .bind(node)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>> {
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(GREATEST(next_attempt_at, COALESCE(lease_until, 0)))
             FROM deliveries WHERE state IN ('queued', 'retrying')",
        )
        .fetch_one(&self.pool)
        .await?;
        due.map(rows::from_ms).transpose()
    }

    async fn queue_list(&self, limit: u32) -> Result<Vec<QueueEntry>> {
        messages::queue_list(&self.pool, limit).await
    }

    async fn queue_stats(&self) -> Result<(u64, Option<DateTime<Utc>>)> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS depth, MIN(created_at) AS oldest
             FROM deliveries WHERE state IN ('queued', 'retrying')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((
            row.int("depth")? as u64,
            row.opt_int("oldest")?.map(rows::from_ms).transpose()?,
        ))
    }

    async fn queue_retry(&self, delivery_id: &str, now: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE deliveries SET state = CASE state WHEN 'failed' THEN 'retrying' ELSE state END,
                 next_attempt_at = $1, updated_at = $1
             WHERE id = $2 AND state <> 'delivered'",
        )
        .bind(to_ms(now))
        .bind(delivery_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn timeline(&self, store: &str, order: &str) -> Result<Vec<TimelineEntry>> {
        messages::timeline(&self.pool, store, order).await
    }

    async fn purge_batch(
        &self,
        aliases_before: DateTime<Utc>,
        messages_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<PurgeCounts> {
        messages::purge_batch(&self.pool, aliases_before, messages_before, limit).await
    }
}
