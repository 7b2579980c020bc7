//! Hard-bounce suppression in the database: a counted hard bounce raises
//! its participant's count and, at the threshold, marks it undeliverable,
//! with a `participant.undeliverable` entry on the order's timeline and a
//! webhook event, in the transaction that records the failure. Changing
//! the participant's address clears both.

use chrono::{DateTime, Utc};
use ulid::Ulid;

use super::outbox::{insert_webhook_event, WebhookEventKind};
use super::rows::{self, json, to_ms, Columns};
use super::sql::{SqlConn, Stmt};
use super::{schema, AliasRef, HardBounce, Keyring, Participant, Result};

/// The timeline event an undeliverable participant gets.
pub const UNDELIVERABLE_EVENT: &str = "participant.undeliverable";

/// Count `bounce` against the recipient of `delivery_id`; at its threshold,
/// mark the participant undeliverable and tell the order. Returns whether
/// this bounce made it undeliverable.
pub(crate) async fn count_hard_bounce(
    conn: &mut impl SqlConn,
    delivery_id: &str,
    bounce: &HardBounce,
    at: DateTime<Utc>,
) -> Result<bool> {
    let sql = format!(
        "UPDATE participants SET hard_bounces = hard_bounces + 1
         WHERE alias_key = (SELECT lower(rcpt_alias) FROM deliveries WHERE id = $1)
         RETURNING hard_bounces, {}",
        schema::PARTICIPANT
    );
    let Some(row) = conn
        .fetch_optional(Stmt::new(sql).text(delivery_id))
        .await?
    else {
        return Ok(false);
    };
    let participant = rows::participant_as_stored(&row)?;
    if participant.undeliverable || row.int("hard_bounces")? < i64::from(bounce.after) {
        return Ok(false);
    }
    mark_undeliverable(conn, &participant, &bounce.status, at).await?;
    Ok(true)
}

async fn mark_undeliverable(
    conn: &mut impl SqlConn,
    p: &Participant,
    status: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    conn.execute(
        Stmt::new("UPDATE participants SET undeliverable_at = $1 WHERE alias_key = $2")
            .int(to_ms(at))
            .text(p.key()),
    )
    .await?;
    let id = Ulid::new().to_string();
    conn.execute(
        Stmt::new(
            "INSERT INTO timeline_entries (id, store, order_id, at, message_id, from_alias,
                 to_aliases, subject, first_words, attachment_names, refused, reason, event)
             VALUES ($1, $2, $3, $4, NULL, NULL, $5, '', '', '[]', NULL, $6, $7)",
        )
        .text(&id)
        .text(&p.store)
        .text(&p.order)
        .int(to_ms(at))
        .text(json(&[AliasRef::from(p)]))
        .text(status)
        .text(UNDELIVERABLE_EVENT),
    )
    .await?;
    tracing::info!(alias = %p.alias, order = %p.order, status, "participant undeliverable");
    crate::telemetry::participant_undeliverable();
    insert_webhook_event(
        conn,
        &p.store,
        &p.order,
        &id,
        WebhookEventKind::ParticipantUndeliverable,
        at,
    )
    .await
}

/// Give the participant of `alias` the address `email`, its hard bounces
/// forgotten; the participant as it is now, or `None` for no such alias.
pub(crate) async fn change_address(
    conn: &mut impl SqlConn,
    keys: &Keyring,
    alias: &str,
    email: &str,
) -> Result<Option<Participant>> {
    let sql = format!(
        "UPDATE participants SET email = $1, hard_bounces = 0, undeliverable_at = NULL
         WHERE alias_key = $2 RETURNING {}",
        schema::PARTICIPANT
    );
    let row = conn
        .fetch_optional(
            Stmt::new(sql)
                .text(keys.seal_address(email))
                .text(alias.to_lowercase()),
        )
        .await?;
    row.as_ref().map(|r| rows::participant(r, keys)).transpose()
}
