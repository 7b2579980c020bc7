//! Delivery failures that concern the sender: the relay's own notices (a
//! message and one delivery, from the null sender, on no timeline) and
//! bounces that fail a delivery after the fact. SQL both backends accept,
//! used inside their group-commit transactions.

/// Inherent `insert_notice` and `record_bounce` for `$storage` on `$db`.
macro_rules! impl_notices {
    ($storage:ident, $db:ty) => {
        const _: () = {
            use $crate::storage::rows::to_ms;
            use $crate::storage::{AttemptRecord, Notice, Result};

            type Conn = <$db as sqlx::Database>::Connection;

            impl $storage {
                /// Queue `notice` for delivery.
                pub(crate) async fn insert_notice(conn: &mut Conn, n: &Notice) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO messages (id, queue_id, store, order_id, received_at, return_path, size, content)
                         VALUES ($1, $1, $2, $3, $4, '', $5, $6)",
                    )
                    .bind(&n.id)
                    .bind(&n.store)
                    .bind(&n.order)
                    .bind(to_ms(n.at))
                    .bind(n.content.len() as i64)
                    .bind(&n.content)
                    .execute(&mut *conn)
                    .await?;
                    sqlx::query(
                        "INSERT INTO deliveries (id, message_id, rcpt_alias, rcpt_email, mail_from, state,
                             next_attempt_at, created_at, updated_at)
                         VALUES ($1, $2, $3, $4, '', 'queued', $5, $5, $5)",
                    )
                    .bind(&n.delivery_id)
                    .bind(&n.id)
                    .bind(&n.rcpt_label)
                    .bind(&n.rcpt_email)
                    .bind(to_ms(n.at))
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                }

                /// Fail a delivery because a bounce came back, unless it has
                /// failed already. Takes the lease away from any worker.
                /// Returns whether the delivery changed.
                pub(crate) async fn record_bounce(
                    conn: &mut Conn,
                    delivery_id: &str,
                    record: &AttemptRecord,
                ) -> Result<bool> {
                    sqlx::query(
                        "INSERT INTO webhook_events (id, store, order_id, entry_id, kind, created_at, state,
                             next_attempt_at, updated_at)
                         SELECT $1, m.store, m.order_id, m.id, 'delivery.updated', $2, 'pending', $2, $2
                         FROM deliveries d JOIN messages m ON m.id = d.message_id
                              JOIN stores s ON s.store = m.store
                              JOIN timeline_entries t ON t.id = m.id
                         WHERE d.id = $3 AND d.state <> 'failed' AND s.webhook_url IS NOT NULL",
                    )
                    .bind(ulid::Ulid::new().to_string())
                    .bind(to_ms(record.at))
                    .bind(delivery_id)
                    .execute(&mut *conn)
                    .await?;
                    let done = sqlx::query(
                        "UPDATE deliveries SET state = 'failed', last_reply = $1, updated_at = $2,
                             lease_owner = NULL, lease_until = NULL
                         WHERE id = $3 AND state <> 'failed'",
                    )
                    .bind(&record.reply)
                    .bind(to_ms(record.at))
                    .bind(delivery_id)
                    .execute(&mut *conn)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Ok(false);
                    }
                    sqlx::query(
                        "INSERT INTO delivery_attempts (delivery_id, at, state, reply) VALUES ($1, $2, 'failed', $3)",
                    )
                    .bind(delivery_id)
                    .bind(to_ms(record.at))
                    .bind(&record.reply)
                    .execute(&mut *conn)
                    .await?;
                    Ok(true)
                }
            }
        };
    };
}

pub(crate) use impl_notices;
