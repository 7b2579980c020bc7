//! Messages, deliveries and timeline entries on SQLite.

use sqlx::{Sqlite, SqlitePool, Transaction};

use super::SqliteStorage;
use crate::storage::rows::{json, to_ms};
use crate::storage::{AcceptedMessage, AttemptRecord, Result, WebhookEventKind, Write};

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
             subject, first_words, attachment_names, authentication)
         VALUES (?1, ?2, ?3, ?4, ?1, ?5, ?6, ?7, ?8, ?9, ?10)",
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
    .bind(e.authentication.as_ref().map(json))
    .execute(&mut **tx)
    .await?;
    SqliteStorage::insert_webhook_event(
        &mut **tx,
        &m.store,
        &m.order,
        &m.id,
        WebhookEventKind::MessageAccepted,
        m.received_at,
    )
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

/// Write an attempt's outcome if `node` still holds the lease, with a
/// webhook event when the delivery's state changes.
async fn record_attempt(
    tx: &mut Transaction<'_, Sqlite>,
    node: &str,
    delivery_id: &str,
    a: &AttemptRecord,
) -> Result<bool> {
    // Before the update, which changes the state compared here.
    sqlx::query(
        "INSERT INTO webhook_events (id, store, order_id, entry_id, kind, created_at, state,
             next_attempt_at, updated_at)
         SELECT ?1, m.store, m.order_id, m.id, 'delivery.updated', ?2, 'pending', ?2, ?2
         FROM deliveries d JOIN messages m ON m.id = d.message_id JOIN stores s ON s.store = m.store
              JOIN timeline_entries t ON t.id = m.id
         WHERE d.id = ?3 AND d.lease_owner = ?4 AND d.state <> ?5 AND s.webhook_url IS NOT NULL",
    )
    .bind(ulid::Ulid::new().to_string())
    .bind(to_ms(a.at))
    .bind(delivery_id)
    .bind(node)
    .bind(a.state.as_str())
    .execute(&mut **tx)
    .await?;
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
                SqliteStorage::insert_refusal(&mut tx, r).await?;
                true
            }
            Write::Attempt {
                node,
                delivery_id,
                record,
                notice,
            } => {
                let applied = record_attempt(&mut tx, node, delivery_id, record).await?;
                if let (true, Some(n)) = (applied, notice) {
                    SqliteStorage::insert_notice(&mut tx, n).await?;
                }
                applied
            }
            Write::Bounce {
                delivery_id,
                record,
                notice,
            } => {
                let applied = SqliteStorage::record_bounce(&mut tx, delivery_id, record).await?;
                if let (true, Some(n)) = (applied, notice) {
                    SqliteStorage::insert_notice(&mut tx, n).await?;
                }
                applied
            }
        });
    }
    tx.commit().await?;
    Ok(applied)
}
