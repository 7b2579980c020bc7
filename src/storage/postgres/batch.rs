//! The group commit on PostgreSQL. Every statement is a round trip to the
//! server, so a batch is one statement: rows passed as arrays, expanded
//! with UNNEST, and written by data-modifying CTEs, one per table. Run on
//! its own, the statement is its own transaction: no BEGIN, no COMMIT. Rare
//! writes (refusals, bounces, failures that notify the sender) go into a
//! transaction beside it.

use std::collections::HashSet;

use sqlx::{Connection, PgConnection};

use crate::alias::Participant;
use crate::storage::rows::{json, to_ms};
use crate::storage::sorted::{applied, sort, Outcome, Sorted};
use crate::storage::{AcceptedMessage, NewDelivery, Result, Write};

/// Write `batch` in one transaction; per write, whether it applied.
pub(super) async fn apply(conn: &mut PgConnection, batch: &[Write]) -> Result<Vec<bool>> {
    let Sorted {
        messages,
        outcomes,
        rare,
    } = sort(batch);
    if !rare {
        let recorded = write_rows(conn, &messages, &outcomes).await?;
        return Ok(applied(batch, &recorded, &HashSet::new()));
    }
    let mut tx = conn.begin().await?;
    let mut recorded = write_rows(&mut tx, &messages, &outcomes).await?;
    let mut bounced = HashSet::new();
    for w in batch {
        match w {
            // Refusals are rare (mail to ended aliases): one statement each.
            Write::Refusal(r) => crate::storage::queries::insert_refusal(&mut *tx, r).await?,
            // Failures that notify the sender, and bounces, are rare: one by one.
            Write::Attempt {
                node,
                delivery_id,
                record,
                notice: Some(n),
            } => {
                let one = [Outcome {
                    node,
                    delivery_id,
                    record,
                }];
                if !write_rows(&mut tx, &[], &one).await?.is_empty() {
                    crate::storage::notices::insert_notice(&mut *tx, n).await?;
                    recorded.insert(delivery_id.clone());
                }
            }
            Write::Bounce {
                delivery_id,
                record,
                notice,
            } => {
                if crate::storage::notices::record_bounce(&mut *tx, delivery_id, record).await? {
                    bounced.insert(delivery_id.clone());
                    if let Some(n) = notice {
                        crate::storage::notices::insert_notice(&mut *tx, n).await?;
                    }
                }
            }
            Write::Accept(_) | Write::Attempt { notice: None, .. } => {}
        }
    }
    tx.commit().await?;
    Ok(applied(batch, &recorded, &bounced))
}

/// Accepted messages (with the contacts met on them, their timeline
/// entries, the events announcing them to stores with a webhook, and their
/// deliveries) and attempt outcomes, in one statement. An outcome is written
/// only where its node still holds the lease; returns the deliveries whose
/// outcome was. The foreign keys are checked at the statement's end, and
/// every part of it sees the rows as they were before it, so `before` holds
/// the states the outcomes replace: a webhook event is written where the
/// state changes.
async fn write_rows(
    conn: &mut PgConnection,
    ms: &[&AcceptedMessage],
    attempts: &[Outcome<'_>],
) -> Result<HashSet<String>> {
    let contacts: Vec<&Participant> = ms.iter().flat_map(|m| &m.new_participants).collect();
    let deliveries: Vec<(&AcceptedMessage, &NewDelivery)> = ms
        .iter()
        .flat_map(|m| m.deliveries.iter().map(move |d| (*m, d)))
        .collect();
    let texts =
        |f: &dyn Fn(&AcceptedMessage) -> String| ms.iter().map(|m| f(m)).collect::<Vec<_>>();
    let ptexts =
        |f: &dyn Fn(&Participant) -> String| contacts.iter().map(|p| f(p)).collect::<Vec<_>>();
    let dtexts = |f: &dyn Fn(&(&AcceptedMessage, &NewDelivery)) -> String| {
        deliveries.iter().map(f).collect::<Vec<String>>()
    };
    let written: Vec<String> = sqlx::query_scalar(WRITE_ROWS)
        // participants
        .bind(ptexts(&|p| p.key()))
        .bind(ptexts(&|p| p.alias.clone()))
        .bind(ptexts(&|p| p.store.clone()))
        .bind(ptexts(&|p| p.order.clone()))
        .bind(ptexts(&|p| p.role.as_str().to_string()))
        .bind(ptexts(&|p| p.email.clone()))
        .bind(ptexts(&|p| p.mode.as_str().to_string()))
        .bind(
            contacts
                .iter()
                .map(|p| to_ms(p.created_at))
                .collect::<Vec<i64>>(),
        )
        .bind(
            contacts
                .iter()
                .map(|p| to_ms(p.expires_at))
                .collect::<Vec<i64>>(),
        )
        // messages
        .bind(texts(&|m| m.id.clone()))
        .bind(texts(&|m| m.queue_id.clone()))
        .bind(texts(&|m| m.store.clone()))
        .bind(texts(&|m| m.order.clone()))
        .bind(
            ms.iter()
                .map(|m| to_ms(m.received_at))
                .collect::<Vec<i64>>(),
        )
        .bind(texts(&|m| m.return_path.clone()))
        .bind(
            ms.iter()
                .map(|m| m.content.len() as i64)
                .collect::<Vec<i64>>(),
        )
        .bind(ms.iter().map(|m| &m.content[..]).collect::<Vec<&[u8]>>())
        // timeline entries and events
        .bind(
            ms.iter()
                .map(|m| m.entry.from.as_ref().map(json))
                .collect::<Vec<Option<String>>>(),
        )
        .bind(texts(&|m| json(&m.entry.to)))
        .bind(texts(&|m| m.entry.subject.clone()))
        .bind(texts(&|m| m.entry.first_words.clone()))
        .bind(texts(&|m| json(&m.entry.attachment_names)))
        .bind(new_ids(ms.len()))
        .bind(
            ms.iter()
                .map(|m| m.entry.authentication.as_ref().map(json))
                .collect::<Vec<Option<String>>>(),
        )
        // deliveries
        .bind(dtexts(&|(_, d)| d.id.clone()))
        .bind(dtexts(&|(m, _)| m.id.clone()))
        .bind(dtexts(&|(_, d)| d.rcpt_alias.clone()))
        .bind(dtexts(&|(_, d)| d.rcpt_email.clone()))
        .bind(dtexts(&|(_, d)| d.mail_from.clone()))
        .bind(
            deliveries
                .iter()
                .map(|(m, _)| to_ms(m.received_at))
                .collect::<Vec<i64>>(),
        )
        .bind(
            deliveries
                .iter()
                .map(|(m, _)| m.lease.as_ref().map(|l| l.owner.clone()))
                .collect::<Vec<Option<String>>>(),
        )
        .bind(
            deliveries
                .iter()
                .map(|(m, _)| m.lease.as_ref().map(|l| to_ms(l.until)))
                .collect::<Vec<Option<i64>>>(),
        )
        // outcomes
        .bind(
            attempts
                .iter()
                .map(|o| o.delivery_id.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(
            attempts
                .iter()
                .map(|o| o.node.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(
            attempts
                .iter()
                .map(|o| o.record.state.as_str().to_string())
                .collect::<Vec<_>>(),
        )
        .bind(
            attempts
                .iter()
                .map(|o| o.record.reply.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            attempts
                .iter()
                .map(|o| to_ms(o.record.at))
                .collect::<Vec<i64>>(),
        )
        .bind(
            attempts
                .iter()
                .map(|o| o.record.next_attempt_at.map(to_ms))
                .collect::<Vec<Option<i64>>>(),
        )
        .bind(new_ids(attempts.len()))
        // added since: the door's flags per entry, the sender per delivery
        .bind(
            ms.iter()
                .map(|m| (!m.entry.flags.is_empty()).then(|| json(&m.entry.flags)))
                .collect::<Vec<Option<String>>>(),
        )
        .bind(
            deliveries
                .iter()
                .map(|(_, d)| d.sender_alias.clone())
                .collect::<Vec<Option<String>>>(),
        )
        .fetch_all(&mut *conn)
        .await?;
    Ok(written.into_iter().collect())
}

/// The statement of `write_rows`. The committer's connection plans it once
/// (`plan_cache_mode = force_generic_plan`, with `enable_seqscan = off`; see
/// `PgStorage::connect`), so a plan made while the tables were small does
/// not scan all of `deliveries` for every batch until the next ANALYZE.
const WRITE_ROWS: &str = "
WITH contacts AS (
    INSERT INTO participants (alias_key, alias, store, order_id, role, email, mode, created_at,
        expires_at)
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::int8[], $9::int8[])
    ON CONFLICT (alias_key) DO NOTHING),
stored AS (
    INSERT INTO messages (id, queue_id, store, order_id, received_at, return_path, size, content)
    SELECT * FROM UNNEST($10::text[], $11::text[], $12::text[], $13::text[], $14::int8[],
                         $15::text[], $16::int8[], $17::bytea[])),
t AS (
    SELECT * FROM UNNEST($10::text[], $12::text[], $13::text[], $14::int8[], $18::text[],
                         $19::text[], $20::text[], $21::text[], $22::text[], $23::text[],
                         $24::text[], $40::text[])
        AS t(id, store, order_id, at, from_alias, to_aliases, subject, first_words,
             attachment_names, event_id, authentication, flags)),
entries AS (
    INSERT INTO timeline_entries (id, store, order_id, at, message_id, from_alias, to_aliases,
        subject, first_words, attachment_names, authentication, flags)
    SELECT id, store, order_id, at, id, from_alias, to_aliases, subject, first_words,
           attachment_names, authentication, flags
    FROM t),
accepted_events AS (
    INSERT INTO webhook_events (id, store, order_id, entry_id, kind, created_at, state,
        next_attempt_at, updated_at)
    SELECT t.event_id, t.store, t.order_id, t.id, 'message.accepted', t.at, 'pending', t.at, t.at
    FROM t JOIN stores s ON s.store = t.store
    WHERE s.webhook_url IS NOT NULL),
queued AS (
    INSERT INTO deliveries (id, message_id, rcpt_alias, rcpt_email, mail_from, state,
        next_attempt_at, created_at, updated_at, lease_owner, lease_until, sender_alias)
    SELECT id, message_id, rcpt_alias, rcpt_email, mail_from, 'queued', at, at, at,
        lease_owner, lease_until, sender_alias
    FROM UNNEST($25::text[], $26::text[], $27::text[], $28::text[], $29::text[], $30::int8[],
                $31::text[], $32::int8[], $41::text[])
         AS d(id, message_id, rcpt_alias, rcpt_email, mail_from, at, lease_owner, lease_until,
              sender_alias)),
outcome AS (
    SELECT * FROM UNNEST($33::text[], $34::text[], $35::text[], $36::text[], $37::int8[],
                         $38::int8[], $39::text[])
        AS o(id, node, state, reply, at, next_at, event_id)),
before AS (
    SELECT d.id, d.state, d.message_id FROM deliveries d JOIN outcome o ON o.id = d.id),
updated AS (
    UPDATE deliveries d SET state = o.state, attempts = d.attempts + 1, last_reply = o.reply,
        updated_at = o.at, next_attempt_at = COALESCE(o.next_at, d.next_attempt_at),
        lease_owner = NULL, lease_until = NULL
    FROM outcome o WHERE d.id = o.id AND d.lease_owner = o.node
    RETURNING d.id, o.at, o.state, o.reply, o.event_id),
updated_events AS (
    INSERT INTO webhook_events (id, store, order_id, entry_id, kind, created_at, state,
        next_attempt_at, updated_at)
    SELECT u.event_id, m.store, m.order_id, m.id, 'delivery.updated', u.at, 'pending', u.at, u.at
    FROM updated u JOIN before b ON b.id = u.id JOIN messages m ON m.id = b.message_id
         JOIN stores s ON s.store = m.store JOIN timeline_entries t ON t.id = m.id
    WHERE b.state <> u.state AND s.webhook_url IS NOT NULL)
INSERT INTO delivery_attempts (delivery_id, at, state, reply)
SELECT id, at, state, reply FROM updated RETURNING delivery_id";

/// Fresh ids for the webhook events a statement may write.
fn new_ids(n: usize) -> Vec<String> {
    (0..n).map(|_| ulid::Ulid::new().to_string()).collect()
}
