//! Messages, deliveries and timeline entries on SQLite.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{Sqlite, SqlitePool, Transaction};

use super::SqliteStorage;
use crate::storage::rows::{self, json, to_ms, Columns, JOB_COLUMNS};
use crate::storage::{
    AcceptedMessage, AttemptRecord, DeliveryJob, DeliveryStatus, PurgeCounts, QueueEntry, Result,
    TimelineEntry, Write,
};

async fn insert_message(tx: &mut Transaction<'_, Sqlite>, m: &AcceptedMessage) -> Result<()> {
    let at = to_ms(m.received_at);
    sqlx::query(
        "INSERT INTO messages (id, queue_id, store, order_id, received_at, return_path, size, content)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&m.id)
    .bind(&m.queue_id)
    .bind(&m.store)
    .bind(&m.order)
    .bind(at)
    .bind(&m.return_path)
    .bind(m.content.len() as i64)
    .bind(&m.content)
    .execute(&mut **tx)
    .await?;
    for p in &m.new_participants {
        SqliteStorage::insert_participant(&mut **tx, p).await?;
    }
    let e = &m.entry;
    sqlx::query(
        "INSERT INTO timeline_entries (id, store, order_id, at, message_id, from_alias, to_aliases,
             subject, first_words, attachment_names)
         VALUES (?1, ?2, ?3, ?4, ?1, ?5, ?6, ?7, ?8, ?9)",
    )
    .bind(&m.id)
    .bind(&m.store)
    .bind(&m.order)
    .bind(at)
    .bind(e.from.as_ref().map(json))
    .bind(json(&e.to))
    .bind(&e.subject)
    .bind(&e.first_words)
    .bind(json(&e.attachment_names))
    .execute(&mut **tx)
    .await?;
    for d in &m.deliveries {
        sqlx::query(
            "INSERT INTO deliveries (id, message_id, rcpt_alias, rcpt_email, mail_from, state,
                 next_attempt_at, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?6, ?6)",
        )
        .bind(&d.id)
        .bind(&m.id)
        .bind(&d.rcpt_alias)
        .bind(&d.rcpt_email)
        .bind(&d.mail_from)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Write an attempt's outcome if `node` still holds the lease.
async fn record_attempt(
    tx: &mut Transaction<'_, Sqlite>,
    node: &str,
    delivery_id: &str,
    a: &AttemptRecord,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE deliveries SET state = ?, attempts = attempts + 1, last_reply = ?, updated_at = ?,
             next_attempt_at = COALESCE(?, next_attempt_at), lease_owner = NULL, lease_until = NULL
         WHERE id = ? AND lease_owner = ?",
    )
    .bind(a.state.as_str())
    .bind(&a.reply)
    .bind(to_ms(a.at))
    .bind(a.next_attempt_at.map(to_ms))
    .bind(delivery_id)
    .bind(node)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO delivery_attempts (delivery_id, at, state, reply) VALUES (?, ?, ?, ?)",
    )
    .bind(delivery_id)
    .bind(to_ms(a.at))
    .bind(a.state.as_str())
    .bind(&a.reply)
    .execute(&mut **tx)
    .await?;
    Ok(true)
}

/// The group commit: every write in one transaction.
pub(super) async fn apply(pool: &SqlitePool, batch: &[Write]) -> Result<Vec<bool>> {
    let mut tx = pool.begin().await?;
    let mut applied = Vec::with_capacity(batch.len());
    for write in batch {
        applied.push(match write {
            Write::Accept(m) => {
                insert_message(&mut tx, m).await?;
                true
            }
            Write::Refusal(r) => {
                sqlx::query(rows::INSERT_REFUSAL)
                    .bind(&r.id)
                    .bind(&r.store)
                    .bind(&r.order)
                    .bind(to_ms(r.at))
                    .bind(r.from.as_ref().map(json))
                    .bind(json(&r.to))
                    .bind(&r.reply)
                    .execute(&mut *tx)
                    .await?;
                true
            }
            Write::Attempt {
                node,
                delivery_id,
                record,
            } => record_attempt(&mut tx, node, delivery_id, record).await?,
        });
    }
    tx.commit().await?;
    Ok(applied)
}

/// One statement: SQLite has a single writer, so the select and the update
/// cannot interleave with another node's (there is none).
pub(super) async fn claim_due(
    pool: &SqlitePool,
    node: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<DeliveryJob>> {
    let sql = format!(
        "UPDATE deliveries SET lease_owner = ?1, lease_until = ?2
         WHERE id IN (
             SELECT id FROM deliveries
             WHERE state IN ('queued', 'retrying') AND next_attempt_at <= ?3
               AND (lease_until IS NULL OR lease_until <= ?3)
             ORDER BY next_attempt_at LIMIT ?4)
         RETURNING {JOB_COLUMNS}"
    );
    let claimed = sqlx::query(&sql)
        .bind(node)
        .bind(to_ms(lease_until))
        .bind(to_ms(now))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    claimed.iter().map(rows::delivery_job).collect()
}

pub(super) async fn queue_list(pool: &SqlitePool, limit: u32) -> Result<Vec<QueueEntry>> {
    let found = sqlx::query(
        "SELECT d.id, d.message_id, m.store, m.order_id, d.rcpt_alias, d.state, d.attempts,
                d.next_attempt_at, d.last_reply, d.lease_owner
         FROM deliveries d JOIN messages m ON m.id = d.message_id
         WHERE d.state IN ('queued', 'retrying', 'failed')
         ORDER BY d.next_attempt_at LIMIT ?",
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    found.iter().map(rows::queue_entry).collect()
}

pub(super) async fn timeline(
    pool: &SqlitePool,
    store: &str,
    order: &str,
) -> Result<Vec<TimelineEntry>> {
    let deliveries = sqlx::query(
        "SELECT d.message_id, d.rcpt_alias, d.state, d.attempts, d.last_reply, d.updated_at
         FROM deliveries d JOIN messages m ON m.id = d.message_id
         WHERE m.store = ? AND m.order_id = ? ORDER BY d.id",
    )
    .bind(store)
    .bind(order)
    .fetch_all(pool)
    .await?;
    let mut by_message: HashMap<String, Vec<DeliveryStatus>> = HashMap::new();
    for r in &deliveries {
        by_message
            .entry(r.text("message_id")?)
            .or_default()
            .push(rows::delivery_status(r)?);
    }
    let entries = sqlx::query(
        "SELECT id, at, message_id, from_alias, to_aliases, subject, first_words, attachment_names, refused
         FROM timeline_entries WHERE store = ? AND order_id = ? ORDER BY at, id",
    )
    .bind(store)
    .bind(order)
    .fetch_all(pool)
    .await?;
    entries
        .iter()
        .map(|r| {
            let mine = r
                .opt_text("message_id")?
                .and_then(|id| by_message.remove(&id));
            rows::timeline_entry(r, mine.unwrap_or_default())
        })
        .collect()
}

/// Deletes cascade from messages to deliveries, attempts and timeline entries.
pub(super) async fn purge_batch(
    pool: &SqlitePool,
    aliases_before: DateTime<Utc>,
    messages_before: DateTime<Utc>,
    limit: u32,
) -> Result<PurgeCounts> {
    let limit = i64::from(limit);
    let mut tx = pool.begin().await?;
    let aliases = sqlx::query(
        "DELETE FROM participants WHERE alias_key IN
             (SELECT alias_key FROM participants WHERE expires_at < ? LIMIT ?)",
    )
    .bind(to_ms(aliases_before))
    .bind(limit)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let messages = sqlx::query(
        "DELETE FROM messages WHERE id IN
             (SELECT id FROM messages m WHERE received_at < ?
                AND NOT EXISTS (SELECT 1 FROM deliveries d
                                WHERE d.message_id = m.id AND d.state IN ('queued', 'retrying'))
              LIMIT ?)",
    )
    .bind(to_ms(messages_before))
    .bind(limit)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let entries = sqlx::query(
        "DELETE FROM timeline_entries WHERE id IN
             (SELECT id FROM timeline_entries WHERE message_id IS NULL AND at < ? LIMIT ?)",
    )
    .bind(to_ms(messages_before))
    .bind(limit)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(PurgeCounts {
        aliases,
        messages,
        entries,
    })
}
