//! Messages, deliveries and timeline entries on PostgreSQL.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::storage::rows::{self, to_ms, Columns, JOB_COLUMNS};
use crate::storage::{DeliveryJob, DeliveryStatus, PurgeCounts, QueueEntry, Result, TimelineEntry};

/// Several nodes claim at once: `SKIP LOCKED` lets each take rows the others
/// are not taking, without waiting, and the lease keeps them its own.
pub(super) async fn claim_due(
    pool: &PgPool,
    node: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<DeliveryJob>> {
    let sql = format!(
        "UPDATE deliveries SET lease_owner = $1, lease_until = $2
         WHERE id IN (
             SELECT id FROM deliveries
             WHERE state IN ('queued', 'retrying') AND next_attempt_at <= $3
               AND (lease_until IS NULL OR lease_until <= $3)
             ORDER BY next_attempt_at LIMIT $4
             FOR UPDATE SKIP LOCKED)
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

pub(super) async fn queue_list(pool: &PgPool, limit: u32) -> Result<Vec<QueueEntry>> {
    let found = sqlx::query(
        "SELECT d.id, d.message_id, m.store, m.order_id, d.rcpt_alias, d.state, d.attempts,
                d.next_attempt_at, d.last_reply, d.lease_owner
         FROM deliveries d JOIN messages m ON m.id = d.message_id
         WHERE d.state IN ('queued', 'retrying', 'failed')
         ORDER BY d.next_attempt_at LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    found.iter().map(rows::queue_entry).collect()
}

pub(super) async fn timeline(
    pool: &PgPool,
    store: &str,
    order: &str,
) -> Result<Vec<TimelineEntry>> {
    let deliveries = sqlx::query(
        "SELECT d.message_id, d.rcpt_alias, d.state, d.attempts, d.last_reply, d.updated_at
         FROM deliveries d JOIN messages m ON m.id = d.message_id
         WHERE m.store = $1 AND m.order_id = $2 ORDER BY d.id",
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
         FROM timeline_entries WHERE store = $1 AND order_id = $2 ORDER BY at, id",
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
    pool: &PgPool,
    aliases_before: DateTime<Utc>,
    messages_before: DateTime<Utc>,
    limit: u32,
) -> Result<PurgeCounts> {
    let limit = i64::from(limit);
    let mut tx = pool.begin().await?;
    let aliases = sqlx::query(
        "DELETE FROM participants WHERE alias_key IN
             (SELECT alias_key FROM participants WHERE expires_at < $1 LIMIT $2)",
    )
    .bind(to_ms(aliases_before))
    .bind(limit)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let messages = sqlx::query(
        "DELETE FROM messages WHERE id IN
             (SELECT id FROM messages m WHERE received_at < $1
                AND NOT EXISTS (SELECT 1 FROM deliveries d
                                WHERE d.message_id = m.id AND d.state IN ('queued', 'retrying'))
              LIMIT $2)",
    )
    .bind(to_ms(messages_before))
    .bind(limit)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let entries = sqlx::query(
        "DELETE FROM timeline_entries WHERE id IN
             (SELECT id FROM timeline_entries WHERE message_id IS NULL AND at < $1 LIMIT $2)",
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
