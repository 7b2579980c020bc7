//! Messages, deliveries and timeline entries on SQLite.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

use super::{from_ms, to_ms, SqliteStorage};
use crate::storage::{
    AcceptedMessage, AliasRef, AttemptRecord, DeliveryJob, DeliveryState, DeliveryStatus,
    QueueEntry, Result, StorageError, TimelineEntry, Write,
};

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serializes")
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StorageError::Corrupt(format!("json column: {e}")))
}

fn state_of(text: &str) -> Result<DeliveryState> {
    DeliveryState::parse(text)
        .ok_or_else(|| StorageError::Corrupt(format!("delivery state `{text}`")))
}

async fn insert_message(tx: &mut Transaction<'_, Sqlite>, m: &AcceptedMessage) -> Result<()> {
    {
        sqlx::query(
            "INSERT INTO messages (id, queue_id, store, order_id, received_at, return_path, size, content)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&m.id)
        .bind(&m.queue_id)
        .bind(&m.store)
        .bind(&m.order)
        .bind(to_ms(m.received_at))
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
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&m.id)
        .bind(&m.store)
        .bind(&m.order)
        .bind(to_ms(m.received_at))
        .bind(&m.id)
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
                 VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?)",
            )
            .bind(&d.id)
            .bind(&m.id)
            .bind(&d.rcpt_alias)
            .bind(&d.rcpt_email)
            .bind(&d.mail_from)
            .bind(to_ms(m.received_at))
            .bind(to_ms(m.received_at))
            .bind(to_ms(m.received_at))
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

pub(super) async fn claim_due(
    pool: &SqlitePool,
    node: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<DeliveryJob>> {
    let rows = sqlx::query(
        "UPDATE deliveries SET lease_owner = ?, lease_until = ?
         WHERE id IN (
             SELECT id FROM deliveries
             WHERE state IN ('queued', 'retrying') AND next_attempt_at <= ?
               AND (lease_until IS NULL OR lease_until <= ?)
             ORDER BY next_attempt_at LIMIT ?)
         RETURNING id, message_id, rcpt_alias, rcpt_email, mail_from, attempts, created_at",
    )
    .bind(node)
    .bind(to_ms(lease_until))
    .bind(to_ms(now))
    .bind(to_ms(now))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DeliveryJob {
                id: r.try_get("id")?,
                message_id: r.try_get("message_id")?,
                rcpt_alias: r.try_get("rcpt_alias")?,
                rcpt_email: r.try_get("rcpt_email")?,
                mail_from: r.try_get("mail_from")?,
                attempts: r.try_get::<i64, _>("attempts")? as u32,
                created_at: from_ms(r.try_get("created_at")?)?,
            })
        })
        .collect()
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

pub(super) async fn queue_list(pool: &SqlitePool, limit: u32) -> Result<Vec<QueueEntry>> {
    let rows = sqlx::query(
        "SELECT d.id, d.message_id, m.store, m.order_id, d.rcpt_alias, d.state, d.attempts,
                d.next_attempt_at, d.last_reply, d.lease_owner
         FROM deliveries d JOIN messages m ON m.id = d.message_id
         WHERE d.state IN ('queued', 'retrying', 'failed')
         ORDER BY d.next_attempt_at LIMIT ?",
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(QueueEntry {
                id: r.try_get("id")?,
                message_id: r.try_get("message_id")?,
                store: r.try_get("store")?,
                order: r.try_get("order_id")?,
                to: r.try_get("rcpt_alias")?,
                state: state_of(&r.try_get::<String, _>("state")?)?,
                attempts: r.try_get::<i64, _>("attempts")? as u32,
                next_attempt_at: from_ms(r.try_get("next_attempt_at")?)?,
                last_reply: r.try_get("last_reply")?,
                leased_by: r.try_get("lease_owner")?,
            })
        })
        .collect()
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
            .entry(r.try_get("message_id")?)
            .or_default()
            .push(DeliveryStatus {
                to: r.try_get("rcpt_alias")?,
                state: state_of(&r.try_get::<String, _>("state")?)?,
                attempts: r.try_get::<i64, _>("attempts")? as u32,
                last_reply: r.try_get("last_reply")?,
                updated_at: from_ms(r.try_get("updated_at")?)?,
            });
    }
    let rows = sqlx::query(
        "SELECT id, at, message_id, from_alias, to_aliases, subject, first_words, attachment_names
         FROM timeline_entries WHERE store = ? AND order_id = ? ORDER BY at, id",
    )
    .bind(store)
    .bind(order)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let message_id: Option<String> = r.try_get("message_id")?;
            let attachment_names: Vec<String> =
                from_json(&r.try_get::<String, _>("attachment_names")?)?;
            Ok(TimelineEntry {
                id: r.try_get("id")?,
                date: from_ms(r.try_get("at")?)?,
                from: r
                    .try_get::<Option<String>, _>("from_alias")?
                    .map(|t| from_json::<AliasRef>(&t))
                    .transpose()?,
                to: from_json(&r.try_get::<String, _>("to_aliases")?)?,
                subject: r.try_get("subject")?,
                first_words: r.try_get("first_words")?,
                has_attachment: !attachment_names.is_empty(),
                attachment_names,
                deliveries: message_id
                    .and_then(|id| by_message.remove(&id))
                    .unwrap_or_default(),
            })
        })
        .collect()
}
