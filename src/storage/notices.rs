//! Delivery failures that concern the sender: the relay's own notices (a
//! message and one delivery, from the null sender, on no timeline) and
//! bounces that fail a delivery after the fact. SQL both backends accept,
//! used inside their group-commit transactions.

use super::rows::to_ms;
use super::sql::{SqlConn, Stmt};
use super::{AttemptRecord, Notice, Result};

/// Queue `notice` for delivery.
pub(crate) async fn insert_notice(conn: &mut impl SqlConn, n: &Notice) -> Result<()> {
    let message = Stmt::new(
        "INSERT INTO messages (id, queue_id, store, order_id, received_at, return_path, size, content)
         VALUES ($1, $1, $2, $3, $4, '', $5, $6)",
    )
    .text(&n.id)
    .text(&n.store)
    .text(&n.order)
    .int(to_ms(n.at))
    .int(n.content.len() as i64)
    .bytes(n.content.clone());
    conn.execute(message).await?;
    let delivery = Stmt::new(
        "INSERT INTO deliveries (id, message_id, rcpt_alias, rcpt_email, mail_from, state,
             next_attempt_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, '', 'queued', $5, $5, $5)",
    )
    .text(&n.delivery_id)
    .text(&n.id)
    .text(&n.rcpt_label)
    .text(&n.rcpt_email)
    .int(to_ms(n.at));
    conn.execute(delivery).await?;
    Ok(())
}

/// Fail a delivery because a bounce came back, unless it has failed
/// already. Takes the lease away from any worker. Returns whether the
/// delivery changed.
pub(crate) async fn record_bounce(
    conn: &mut impl SqlConn,
    delivery_id: &str,
    record: &AttemptRecord,
) -> Result<bool> {
    let event = Stmt::new(
        "INSERT INTO webhook_events (id, store, order_id, entry_id, kind, created_at, state,
             next_attempt_at, updated_at)
         SELECT $1, m.store, m.order_id, m.id, 'delivery.updated', $2, 'pending', $2, $2
         FROM deliveries d JOIN messages m ON m.id = d.message_id
              JOIN stores s ON s.store = m.store
              JOIN timeline_entries t ON t.id = m.id
         WHERE d.id = $3 AND d.state <> 'failed' AND s.webhook_url IS NOT NULL",
    )
    .text(ulid::Ulid::new().to_string())
    .int(to_ms(record.at))
    .text(delivery_id);
    conn.execute(event).await?;
    let failed = Stmt::new(
        "UPDATE deliveries SET state = 'failed', last_reply = $1, updated_at = $2,
             lease_owner = NULL, lease_until = NULL
         WHERE id = $3 AND state <> 'failed'",
    )
    .text(&record.reply)
    .int(to_ms(record.at))
    .text(delivery_id);
    if conn.execute(failed).await? == 0 {
        return Ok(false);
    }
    let attempt = Stmt::new(
        "INSERT INTO delivery_attempts (delivery_id, at, state, reply) VALUES ($1, $2, 'failed', $3)",
    )
    .text(delivery_id)
    .int(to_ms(record.at))
    .text(&record.reply);
    conn.execute(attempt).await?;
    Ok(true)
}
