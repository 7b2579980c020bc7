//! The group commit on PostgreSQL. Every statement is a round trip to the
//! server, so a batch is written with one statement per table (rows passed
//! as arrays and expanded with UNNEST) instead of one per row: a handful of
//! round trips whatever the batch size.

use std::collections::HashSet;

use sqlx::{PgConnection, PgPool};

use crate::storage::rows::{json, to_ms};
use crate::storage::{AcceptedMessage, AttemptRecord, Result, Write};

pub(super) async fn apply(pool: &PgPool, batch: &[Write]) -> Result<Vec<bool>> {
    let mut messages = Vec::new();
    let mut attempts = Vec::new();
    let mut refusals = Vec::new();
    let mut bounces = Vec::new();
    for w in batch {
        match w {
            Write::Accept(m) => messages.push(m.as_ref()),
            Write::Refusal(r) => refusals.push(r),
            Write::Attempt {
                node,
                delivery_id,
                record,
                ..
            } => attempts.push((node.as_str(), delivery_id.as_str(), record)),
            Write::Bounce { .. } => bounces.push(w),
        }
    }
    // A batch of accepted mail only, or of outcomes only, is one statement:
    // written without BEGIN and COMMIT, which would be two more round trips.
    let notices = batch.iter().any(|w| {
        matches!(
            w,
            Write::Attempt {
                notice: Some(_),
                ..
            }
        )
    });
    let contacts = messages.iter().any(|m| !m.new_participants.is_empty());
    let one_kind = messages.is_empty() != attempts.is_empty();
    if one_kind && refusals.is_empty() && bounces.is_empty() && !notices && !contacts {
        let mut conn = pool.acquire().await?;
        if attempts.is_empty() {
            insert_messages(&mut conn, &messages).await?;
            return Ok(vec![true; batch.len()]);
        }
        let recorded = record_attempts(&mut conn, &attempts).await?;
        return Ok(attempts
            .iter()
            .map(|(_, id, _)| recorded.contains(*id))
            .collect());
    }
    let mut tx = pool.begin().await?;
    if !messages.is_empty() {
        insert_messages(&mut tx, &messages).await?;
    }
    // Refusals are rare (mail to ended aliases): one statement each.
    for r in refusals {
        super::PgStorage::insert_refusal(&mut tx, r).await?;
    }
    let recorded = if attempts.is_empty() {
        HashSet::new()
    } else {
        record_attempts(&mut tx, &attempts).await?
    };
    // Failures that notify the sender, and bounces, are rare: one by one.
    for w in batch {
        if let Write::Attempt {
            delivery_id,
            notice: Some(n),
            ..
        } = w
        {
            if recorded.contains(delivery_id) {
                super::PgStorage::insert_notice(&mut tx, n).await?;
            }
        }
    }
    let mut bounced = HashSet::new();
    for w in bounces {
        if let Write::Bounce {
            delivery_id,
            record,
            notice,
        } = w
        {
            if super::PgStorage::record_bounce(&mut tx, delivery_id, record).await? {
                bounced.insert(delivery_id.clone());
                if let Some(n) = notice {
                    super::PgStorage::insert_notice(&mut tx, n).await?;
                }
            }
        }
    }
    tx.commit().await?;
    Ok(batch
        .iter()
        .map(|w| match w {
            Write::Accept(_) | Write::Refusal(_) => true,
            Write::Attempt { delivery_id, .. } => recorded.contains(delivery_id),
            Write::Bounce { delivery_id, .. } => bounced.contains(delivery_id),
        })
        .collect())
}

async fn insert_messages(conn: &mut PgConnection, ms: &[&AcceptedMessage]) -> Result<()> {
    let col =
        |f: &dyn Fn(&AcceptedMessage) -> String| ms.iter().map(|m| f(m)).collect::<Vec<String>>();
    let contacts: Vec<_> = ms.iter().flat_map(|m| &m.new_participants).collect();
    if !contacts.is_empty() {
        let col = |f: &dyn Fn(&crate::alias::Participant) -> String| {
            contacts.iter().map(|p| f(p)).collect::<Vec<_>>()
        };
        sqlx::query(
            "INSERT INTO participants (alias_key, alias, store, order_id, role, email, mode, created_at, expires_at)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                                  $7::text[], $8::int8[], $9::int8[])
             ON CONFLICT (alias_key) DO NOTHING",
        )
        .bind(col(&|p| p.key()))
        .bind(col(&|p| p.alias.clone()))
        .bind(col(&|p| p.store.clone()))
        .bind(col(&|p| p.order.clone()))
        .bind(col(&|p| p.role.as_str().to_string()))
        .bind(col(&|p| p.email.clone()))
        .bind(col(&|p| p.mode.as_str().to_string()))
        .bind(contacts.iter().map(|p| to_ms(p.created_at)).collect::<Vec<i64>>())
        .bind(contacts.iter().map(|p| to_ms(p.expires_at)).collect::<Vec<i64>>())
        .execute(&mut *conn)
        .await?;
    }

    let deliveries: Vec<_> = ms
        .iter()
        .flat_map(|m| m.deliveries.iter().map(move |d| (*m, d)))
        .collect();
    let dcol = |f: &dyn Fn(&(&AcceptedMessage, &crate::storage::NewDelivery)) -> String| {
        deliveries.iter().map(f).collect::<Vec<String>>()
    };
    // The messages, their timeline entries, the events that announce them
    // to stores with a webhook, and their deliveries: one statement, one
    // round trip (the foreign keys are checked at its end).
    sqlx::query(
        "WITH stored AS (
             INSERT INTO messages (id, queue_id, store, order_id, received_at, return_path, size, content)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[],
                                  $7::int8[], $8::bytea[])),
         t AS (
             SELECT * FROM UNNEST($1::text[], $3::text[], $4::text[], $5::int8[], $9::text[], $10::text[],
                                  $11::text[], $12::text[], $13::text[], $14::text[], $15::text[])
                 AS t(id, store, order_id, at, from_alias, to_aliases, subject, first_words,
                      attachment_names, event_id, authentication)),
         entries AS (
             INSERT INTO timeline_entries (id, store, order_id, at, message_id, from_alias, to_aliases,
                 subject, first_words, attachment_names, authentication)
             SELECT id, store, order_id, at, id, from_alias, to_aliases, subject, first_words,
                    attachment_names, authentication
             FROM t),
         events AS (
             INSERT INTO webhook_events (id, store, order_id, entry_id, kind, created_at, state,
                 next_attempt_at, updated_at)
             SELECT t.event_id, t.store, t.order_id, t.id, 'message.accepted', t.at, 'pending', t.at, t.at
             FROM t JOIN stores s ON s.store = t.store
             WHERE s.webhook_url IS NOT NULL)
         INSERT INTO deliveries (id, message_id, rcpt_alias, rcpt_email, mail_from, state,
             next_attempt_at, created_at, updated_at, lease_owner, lease_until)
         SELECT id, message_id, rcpt_alias, rcpt_email, mail_from, 'queued', at, at, at,
             lease_owner, lease_until
         FROM UNNEST($16::text[], $17::text[], $18::text[], $19::text[], $20::text[], $21::int8[],
                     $22::text[], $23::int8[])
              AS d(id, message_id, rcpt_alias, rcpt_email, mail_from, at, lease_owner, lease_until)",
    )
    // messages
    .bind(col(&|m| m.id.clone()))
    .bind(col(&|m| m.queue_id.clone()))
    .bind(col(&|m| m.store.clone()))
    .bind(col(&|m| m.order.clone()))
    .bind(ms.iter().map(|m| to_ms(m.received_at)).collect::<Vec<i64>>())
    .bind(col(&|m| m.return_path.clone()))
    .bind(ms.iter().map(|m| m.content.len() as i64).collect::<Vec<i64>>())
    .bind(ms.iter().map(|m| &m.content[..]).collect::<Vec<&[u8]>>())
    // timeline entries and events
    .bind(ms.iter().map(|m| m.entry.from.as_ref().map(json)).collect::<Vec<Option<String>>>())
    .bind(col(&|m| json(&m.entry.to)))
    .bind(col(&|m| m.entry.subject.clone()))
    .bind(col(&|m| m.entry.first_words.clone()))
    .bind(col(&|m| json(&m.entry.attachment_names)))
    .bind(new_ids(ms.len()))
    .bind(
        ms.iter()
            .map(|m| m.entry.authentication.as_ref().map(json))
            .collect::<Vec<Option<String>>>(),
    )
    // deliveries
    .bind(dcol(&|(_, d)| d.id.clone()))
    .bind(dcol(&|(m, _)| m.id.clone()))
    .bind(dcol(&|(_, d)| d.rcpt_alias.clone()))
    .bind(dcol(&|(_, d)| d.rcpt_email.clone()))
    .bind(dcol(&|(_, d)| d.mail_from.clone()))
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
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Outcomes are written only where the node still holds the lease; returns
/// the deliveries that were.
async fn record_attempts(
    conn: &mut PgConnection,
    attempts: &[(&str, &str, &AttemptRecord)],
) -> Result<HashSet<String>> {
    // Every part of the statement sees the rows as they were before it, so
    // `before` holds the states the outcomes replace: a webhook event is
    // written where the state changes.
    let written: Vec<String> = sqlx::query_scalar(
        "WITH outcome AS (
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[],
                                  $7::text[])
                 AS t(id, node, state, reply, at, next_at, event_id)),
         before AS (
             SELECT d.id, d.state, d.message_id FROM deliveries d JOIN outcome o ON o.id = d.id),
         updated AS (
             UPDATE deliveries d SET state = o.state, attempts = d.attempts + 1, last_reply = o.reply,
                 updated_at = o.at, next_attempt_at = COALESCE(o.next_at, d.next_attempt_at),
                 lease_owner = NULL, lease_until = NULL
             FROM outcome o WHERE d.id = o.id AND d.lease_owner = o.node
             RETURNING d.id, o.at, o.state, o.reply, o.event_id),
         events AS (
             INSERT INTO webhook_events (id, store, order_id, entry_id, kind, created_at, state,
                 next_attempt_at, updated_at)
             SELECT u.event_id, m.store, m.order_id, m.id, 'delivery.updated', u.at, 'pending', u.at, u.at
             FROM updated u JOIN before b ON b.id = u.id JOIN messages m ON m.id = b.message_id
                  JOIN stores s ON s.store = m.store JOIN timeline_entries t ON t.id = m.id
             WHERE b.state <> u.state AND s.webhook_url IS NOT NULL)
         INSERT INTO delivery_attempts (delivery_id, at, state, reply)
         SELECT id, at, state, reply FROM updated RETURNING delivery_id",
    )
    .bind(attempts.iter().map(|(_, id, _)| id.to_string()).collect::<Vec<_>>())
    .bind(attempts.iter().map(|(node, _, _)| node.to_string()).collect::<Vec<_>>())
    .bind(attempts.iter().map(|(_, _, a)| a.state.as_str().to_string()).collect::<Vec<_>>())
    .bind(attempts.iter().map(|(_, _, a)| a.reply.clone()).collect::<Vec<_>>())
    .bind(attempts.iter().map(|(_, _, a)| to_ms(a.at)).collect::<Vec<i64>>())
    .bind(attempts.iter().map(|(_, _, a)| a.next_attempt_at.map(to_ms)).collect::<Vec<Option<i64>>>())
    .bind(new_ids(attempts.len()))
    // Planned afresh each time, with the arrays' real lengths: a plan cached
    // while the tables were small scanned all of `deliveries` for every
    // batch until the next ANALYZE.
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?;
    Ok(written.into_iter().collect())
}

/// Fresh ids for the webhook events a statement may write.
fn new_ids(n: usize) -> Vec<String> {
    (0..n).map(|_| ulid::Ulid::new().to_string()).collect()
}
