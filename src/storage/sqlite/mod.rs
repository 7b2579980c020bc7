//! SQLite storage: the embedded database of a single node. WAL journal with
//! `synchronous=FULL`, so a committed message survives a power cut.

mod messages;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};

use super::{
    BatchWriter, DeliveryJob, QueueEntry, Result, Storage, StorageError, StoreSummary,
    TimelineEntry, Write,
};
use crate::alias::{MaskMode, Participant};

pub struct SqliteStorage {
    pool: SqlitePool,
}

pub(super) fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn from_ms(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StorageError::Corrupt(format!("timestamp {ms}")))
}

fn parse_col<T: FromStr>(row: &SqliteRow, col: &str) -> Result<T> {
    let text: String = row.try_get(col)?;
    text.parse()
        .map_err(|_| StorageError::Corrupt(format!("{col} = `{text}`")))
}

fn participant_from_row(row: &SqliteRow) -> Result<Participant> {
    Ok(Participant {
        alias: row.try_get("alias")?,
        store: row.try_get("store")?,
        order: row.try_get("order_id")?,
        role: parse_col(row, "role")?,
        email: row.try_get("email")?,
        mode: parse_col(row, "mode")?,
        created_at: from_ms(row.try_get("created_at")?)?,
        expires_at: from_ms(row.try_get("expires_at")?)?,
        disabled: row.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
    })
}

const PARTICIPANT_COLUMNS: &str =
    "alias, store, order_id, role, email, mode, created_at, expires_at, disabled_at";

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
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(busy_timeout)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    async fn insert_participant<'e, E>(executor: E, p: &Participant) -> Result<()>
    where
        E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
    {
        sqlx::query(
            "INSERT INTO participants (alias_key, alias, store, order_id, role, email, mode, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (alias_key) DO NOTHING",
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
impl BatchWriter for SqliteStorage {
    async fn apply(&self, batch: &[Write]) -> Result<Vec<bool>> {
        messages::apply(&self.pool, batch).await
    }
}

#[async_trait]
impl Storage for SqliteStorage {
    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("migrations/sqlite")
            .run(&self.pool)
            .await
            .map_err(|e| StorageError::Migration(e.to_string()))
    }

    async fn store_mode(&self, store: &str) -> Result<MaskMode> {
        let row = sqlx::query("SELECT mask_mode FROM stores WHERE store = ?")
            .bind(store)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => parse_col(&row, "mask_mode"),
            None => Ok(MaskMode::Hard),
        }
    }

    async fn set_store_mode(&self, store: &str, mode: MaskMode) -> Result<()> {
        sqlx::query(
            "INSERT INTO stores (store, mask_mode, updated_at) VALUES (?, ?, ?)
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
        let configured = sqlx::query("SELECT mask_mode FROM stores WHERE store = ?")
            .bind(store)
            .fetch_optional(&self.pool)
            .await?;
        let counts = sqlx::query(
            "SELECT COUNT(*) AS aliases, COUNT(DISTINCT order_id) AS orders FROM participants WHERE store = ?",
        )
        .bind(store)
        .fetch_one(&self.pool)
        .await?;
        Ok(StoreSummary {
            store: store.to_string(),
            mask_mode: match &configured {
                Some(row) => parse_col(row, "mask_mode")?,
                None => MaskMode::Hard,
            },
            configured: configured.is_some(),
            aliases: counts.try_get::<i64, _>("aliases")? as u64,
            orders: counts.try_get::<i64, _>("orders")? as u64,
        })
    }

    fn single_node(&self) -> bool {
        true
    }

    async fn ensure_participants(&self, ps: &[Participant]) -> Result<Vec<Participant>> {
        let mut tx = self.pool.begin().await?;
        for p in ps {
            Self::insert_participant(&mut *tx, p).await?;
        }
        let sql = format!("SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE alias_key = ?");
        let mut stored = Vec::with_capacity(ps.len());
        for p in ps {
            let row = sqlx::query(&sql).bind(p.key()).fetch_one(&mut *tx).await?;
            stored.push(participant_from_row(&row)?);
        }
        tx.commit().await?;
        Ok(stored)
    }

    async fn find_alias(&self, alias: &str) -> Result<Option<Participant>> {
        let sql = format!("SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE alias_key = ?");
        let row = sqlx::query(&sql)
            .bind(alias.to_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(participant_from_row).transpose()
    }

    async fn disable_alias(&self, alias: &str, now: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE participants SET disabled_at = COALESCE(disabled_at, ?) WHERE alias_key = ?",
        )
        .bind(to_ms(now))
        .bind(alias.to_lowercase())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn order_participants(&self, store: &str, order: &str) -> Result<Vec<Participant>> {
        let sql = format!(
            "SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE store = ? AND order_id = ? ORDER BY created_at"
        );
        let rows = sqlx::query(&sql)
            .bind(store)
            .bind(order)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(participant_from_row).collect()
    }

    async fn stores_with_order(&self, order: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT store FROM participants WHERE order_id = ? ORDER BY store",
        )
        .bind(order)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("store")?)).collect()
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
        let row = sqlx::query("SELECT content FROM messages WHERE id = ?")
            .bind(message_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("content")).transpose()?)
    }

    async fn release_leases(&self, node: Option<&str>) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL
             WHERE lease_owner IS NOT NULL AND (? IS NULL OR lease_owner = ?)",
        )
        .bind(node)
        .bind(node)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>> {
        let row = sqlx::query(
            "SELECT MIN(MAX(next_attempt_at, COALESCE(lease_until, 0))) AS due
             FROM deliveries WHERE state IN ('queued', 'retrying')",
        )
        .fetch_one(&self.pool)
        .await?;
        row.try_get::<Option<i64>, _>("due")?
            .map(from_ms)
            .transpose()
    }

    async fn queue_list(&self, limit: u32) -> Result<Vec<QueueEntry>> {
        messages::queue_list(&self.pool, limit).await
    }

    async fn queue_retry(&self, delivery_id: &str, now: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE deliveries SET state = CASE state WHEN 'failed' THEN 'retrying' ELSE state END,
                 next_attempt_at = ?, updated_at = ?
             WHERE id = ? AND state <> 'delivered'",
        )
        .bind(to_ms(now))
        .bind(to_ms(now))
        .bind(delivery_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn timeline(&self, store: &str, order: &str) -> Result<Vec<TimelineEntry>> {
        messages::timeline(&self.pool, store, order).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
