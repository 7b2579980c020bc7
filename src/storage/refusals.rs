//! Refused-at-the-door timeline entries: written with their webhook event,
//! or counted as a repeat of one written within the hour.

use super::rows::{json, to_ms};
use super::sql::{SqlConn, Stmt};
use super::{RefusedEntry, Result, WebhookEventKind};

/// How long repeats of one refusal collapse into its first entry.
pub const REFUSAL_COLLAPSE: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// A refused-at-the-door timeline entry, announced to the store's webhook
/// if it has one. Runs inside the group commit's transaction. A refusal
/// before DATA (no subject) of the same sender to the same recipients of
/// the order, for the same reason, within `REFUSAL_COLLAPSE` of an entry
/// already there counts as a repeat of it: no new entry, no new event.
pub(crate) async fn insert_refusal(conn: &mut impl SqlConn, r: &RefusedEntry) -> Result<()> {
    if r.subject.is_empty() {
        let repeated = conn
            .execute(
                Stmt::new(
                    "UPDATE timeline_entries SET repeats = repeats + 1, last_at = $1
                     WHERE id = (SELECT id FROM timeline_entries
                                 WHERE store = $2 AND order_id = $3 AND message_id IS NULL
                                   AND refused IS NOT NULL AND reason = $4
                                   AND COALESCE(from_alias, '') = $5 AND to_aliases = $6
                                   AND at >= $7
                                 ORDER BY at DESC LIMIT 1)",
                )
                .int(to_ms(r.at))
                .text(&r.store)
                .text(&r.order)
                .text(&r.reason)
                .text(r.from.as_ref().map(json).unwrap_or_default())
                .text(json(&r.to))
                .int(to_ms(r.at - REFUSAL_COLLAPSE)),
            )
            .await?;
        if repeated > 0 {
            return Ok(());
        }
    }
    conn.execute(
        Stmt::new(
            "INSERT INTO timeline_entries (id, store, order_id, at, message_id, from_alias,
                 to_aliases, subject, first_words, attachment_names, refused, reason)
             VALUES ($1, $2, $3, $4, NULL, $5, $6, $9, '', '[]', $7, $8)",
        )
        .text(&r.id)
        .text(&r.store)
        .text(&r.order)
        .int(to_ms(r.at))
        .opt_text(r.from.as_ref().map(json))
        .text(json(&r.to))
        .text(&r.reply)
        .text(&r.reason)
        .text(&r.subject),
    )
    .await?;
    super::outbox::insert_webhook_event(
        conn,
        &r.store,
        &r.order,
        &r.id,
        WebhookEventKind::MessageRefused,
        r.at,
    )
    .await
}
