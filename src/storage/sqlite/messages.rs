//! Messages, deliveries and timeline entries on SQLite.

use sqlx::{Sqlite, SqlitePool, Transaction};

use super::SqliteStorage;
use crate::storage::rows::{json, to_ms};
use crate::storage::{AcceptedMessage, AttemptRecord, Result, WebhookEventKind, Write};

/// The statements of one accepted message, sent as one SQL text: the
/// SQLite driver runs each statement on its worker thread, and a round trip
/// to that thread per statement was most of a group commit's time. The
/// parameters are plain `?`, which the driver binds in order across the
/// statements of the text, so a value used twice is bound twice.
const INSERT_MESSAGE: &str = "
INSERT INTO messages (id, queue_id, store, order_id, received_at, return_path, size, content)
VALUES (?, ?, ?, ?, ?, ?, ?, ?);
INSERT INTO timeline_entries (id, store, order_id, at, message_id, from_alias, to_aliases,
    subject, first_words, attachment_names, authentication)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);
INSERT INTO webhook_events (id, store, order_id, entry_id, kind, created_at, state,
    next_attempt_at, updated_at)
SELECT ?, ?, ?, ?, ?, ?, 'pending', ?, ?
FROM stores WHERE store = ? AND webhook_url IS NOT NULL;
";
const INSERT_DELIVERY: &str = "
INSERT INTO deliveries (id, message_id, rcpt_alias, rcpt_email, mail_from, state,
    next_attempt_at, created_at, updated_at, lease_owner, lease_until)
VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?);
";

async fn insert_message(tx: &mut Transaction<'_, Sqlite>, m: &AcceptedMessage) -> Result<()> {
    for p in &m.new_participants {
        SqliteStorage::insert_participant(&mut **tx, p).await?;
    }
    let e = &m.entry;
    let at = to_ms(m.received_at);
    let sql = format!(
        "{INSERT_MESSAGE}{}",
        INSERT_DELIVERY.repeat(m.deliveries.len())
    );
    let mut query = sqlx::query(&sql)
        // messages
        .bind(&m.id)
        .bind(&m.queue_id)
        .bind(&m.store)
        .bind(&m.order)
        .bind(at)
        .bind(&m.return_path)
        .bind(m.content.len() as i64)
        .bind(&m.content[..])
        // timeline_entries
        .bind(&m.id)
        .bind(&m.store)
        .bind(&m.order)
        .bind(at)
        .bind(&m.id)
        .bind(e.from.as_ref().map(json))
        .bind(json(&e.to))
        .bind(&e.subject)
        .bind(&e.first_words)
        .bind(json(&e.attachment_names))
        .bind(e.authentication.as_ref().map(json))
        // webhook_events
        .bind(ulid::Ulid::new().to_string())
        .bind(&m.store)
        .bind(&m.order)
        .bind(&m.id)
        .bind(WebhookEventKind::MessageAccepted.as_str())
        .bind(at)
        .bind(at)
        .bind(at)
        .bind(&m.store);
    let lease_owner = m.lease.as_ref().map(|l| l.owner.as_str());
    let lease_until = m.lease.as_ref().map(|l| to_ms(l.until));
    for d in &m.deliveries {
        query = query
            .bind(&d.id)
            .bind(&m.id)
            .bind(&d.rcpt_alias)
            .bind(&d.rcpt_email)
            .bind(&d.mail_from)
            .bind(at)
            .bind(at)
            .bind(at)
            .bind(lease_owner)
            .bind(lease_until);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// An attempt's outcome, written only if the node still holds the lease:
/// the webhook event when the state changes (before the update, which
/// changes the state compared), the update, and the attempt row (only when
/// the update applied: `changes()`). One SQL text, one round trip.
const RECORD_ATTEMPT: &str = "
INSERT INTO webhook_events (id, store, order_id, entry_id, kind, created_at, state,
    next_attempt_at, updated_at)
SELECT ?, m.store, m.order_id, m.id, ?, ?, 'pending', ?, ?
FROM deliveries d JOIN messages m ON m.id = d.message_id JOIN stores s ON s.store = m.store
     JOIN timeline_entries t ON t.id = m.id
WHERE d.id = ? AND d.lease_owner = ? AND d.state <> ? AND s.webhook_url IS NOT NULL;
UPDATE deliveries SET state = ?, attempts = attempts + 1, last_reply = ?, updated_at = ?,
    next_attempt_at = COALESCE(?, next_attempt_at), lease_owner = NULL, lease_until = NULL
WHERE id = ? AND lease_owner = ?;
INSERT INTO delivery_attempts (delivery_id, at, state, reply)
SELECT ?, ?, ?, ? WHERE changes() = 1;
";

/// Write an attempt's outcome if `node` still holds the lease, with a
/// webhook event when the delivery's state changes. False when the lease
/// was lost (nothing written).
async fn record_attempt(
    tx: &mut Transaction<'_, Sqlite>,
    node: &str,
    delivery_id: &str,
    a: &AttemptRecord,
) -> Result<bool> {
    let at = to_ms(a.at);
    let done = sqlx::query(RECORD_ATTEMPT)
        // webhook_events
        .bind(ulid::Ulid::new().to_string())
        .bind(WebhookEventKind::DeliveryUpdated.as_str())
        .bind(at)
        .bind(at)
        .bind(at)
        .bind(delivery_id)
        .bind(node)
        .bind(a.state.as_str())
        // deliveries
        .bind(a.state.as_str())
        .bind(&a.reply)
        .bind(at)
        .bind(a.next_attempt_at.map(to_ms))
        .bind(delivery_id)
        .bind(node)
        // delivery_attempts
        .bind(delivery_id)
        .bind(at)
        .bind(a.state.as_str())
        .bind(&a.reply)
        .execute(&mut **tx)
        .await?;
    // Every statement is conditioned on the lease: all wrote, or none did.
    Ok(done.rows_affected() > 0)
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
