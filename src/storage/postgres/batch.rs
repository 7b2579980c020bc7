//! The group commit on PostgreSQL. Every statement is a round trip to the
//! server, so a batch is one statement: rows passed as arrays, expanded
//! with UNNEST, and written by data-modifying CTEs, one per table. Run on
//! its own, the statement is its own transaction: no BEGIN, no COMMIT. Rare
//! writes (refusals, bounces, failures that notify the sender) go into a
//! transaction beside it.

use std::collections::HashSet;

use std::sync::OnceLock;

use sqlx::postgres::{PgArguments, PgHasArrayType};
use sqlx::{Arguments, Connection, Encode, PgConnection, Postgres, Type};

use crate::alias::Participant;
use crate::storage::rows::{json, to_ms};
use crate::storage::sorted::{applied, rare_writes, sort, Outcome, Sorted};
use crate::storage::{AcceptedMessage, NewDelivery, Result, StorageError, Write};

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
    // Refusals, failures that notify the sender and bounces are rare: one
    // by one, beside the batch's statement.
    let bounced = rare_writes(&mut *tx, batch, &mut recorded, async |conn, one| {
        Ok(!write_rows(conn, &[], &[one]).await?.is_empty())
    })
    .await?;
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
    let mut a = Arrays::new();
    a.add("contact_key", contacts.iter().map(|p| p.key()));
    a.add("contact_alias", contacts.iter().map(|p| p.alias.as_str()));
    a.add("contact_store", contacts.iter().map(|p| p.store.as_str()));
    a.add("contact_order", contacts.iter().map(|p| p.order.as_str()));
    a.add("contact_role", contacts.iter().map(|p| p.role.as_str()));
    a.add("contact_email", contacts.iter().map(|p| p.email.as_str()));
    a.add("contact_mode", contacts.iter().map(|p| p.mode.as_str()));
    a.add(
        "contact_created_at",
        contacts.iter().map(|p| to_ms(p.created_at)),
    );
    a.add(
        "contact_expires_at",
        contacts.iter().map(|p| to_ms(p.expires_at)),
    );
    a.add("message_id", ms.iter().map(|m| m.id.as_str()));
    a.add("message_queue_id", ms.iter().map(|m| m.queue_id.as_str()));
    a.add("message_store", ms.iter().map(|m| m.store.as_str()));
    a.add("message_order", ms.iter().map(|m| m.order.as_str()));
    a.add(
        "message_received_at",
        ms.iter().map(|m| to_ms(m.received_at)),
    );
    a.add(
        "message_return_path",
        ms.iter().map(|m| m.return_path.as_str()),
    );
    a.add("message_size", ms.iter().map(|m| m.content.len() as i64));
    a.add("message_content", ms.iter().map(|m| &m.content[..]));
    a.add(
        "entry_from",
        ms.iter().map(|m| m.entry.from.as_ref().map(json)),
    );
    a.add("entry_to", ms.iter().map(|m| json(&m.entry.to)));
    a.add("entry_subject", ms.iter().map(|m| m.entry.subject.as_str()));
    a.add(
        "entry_first_words",
        ms.iter().map(|m| m.entry.first_words.as_str()),
    );
    a.add(
        "entry_attachments",
        ms.iter().map(|m| json(&m.entry.attachment_names)),
    );
    a.add("entry_event_id", new_ids(ms.len()));
    a.add(
        "entry_authentication",
        ms.iter().map(|m| m.entry.authentication.as_ref().map(json)),
    );
    a.add(
        "entry_flags",
        ms.iter()
            .map(|m| (!m.entry.flags.is_empty()).then(|| json(&m.entry.flags))),
    );
    a.add("delivery_id", deliveries.iter().map(|(_, d)| d.id.as_str()));
    a.add(
        "delivery_message",
        deliveries.iter().map(|(m, _)| m.id.as_str()),
    );
    a.add(
        "delivery_rcpt_alias",
        deliveries.iter().map(|(_, d)| d.rcpt_alias.as_str()),
    );
    a.add(
        "delivery_rcpt_email",
        deliveries.iter().map(|(_, d)| d.rcpt_email.as_str()),
    );
    a.add(
        "delivery_mail_from",
        deliveries.iter().map(|(_, d)| d.mail_from.as_str()),
    );
    a.add(
        "delivery_at",
        deliveries.iter().map(|(m, _)| to_ms(m.received_at)),
    );
    a.add(
        "delivery_lease_owner",
        deliveries
            .iter()
            .map(|(m, _)| m.lease.as_ref().map(|l| l.owner.clone())),
    );
    a.add(
        "delivery_lease_until",
        deliveries
            .iter()
            .map(|(m, _)| m.lease.as_ref().map(|l| to_ms(l.until))),
    );
    a.add(
        "delivery_sender",
        deliveries.iter().map(|(_, d)| d.sender_alias.clone()),
    );
    a.add("outcome_delivery", attempts.iter().map(|o| o.delivery_id));
    a.add("outcome_node", attempts.iter().map(|o| o.node));
    a.add(
        "outcome_state",
        attempts.iter().map(|o| o.record.state.as_str()),
    );
    a.add(
        "outcome_reply",
        attempts.iter().map(|o| o.record.reply.as_str()),
    );
    a.add("outcome_at", attempts.iter().map(|o| to_ms(o.record.at)));
    a.add(
        "outcome_next_at",
        attempts.iter().map(|o| o.record.next_attempt_at.map(to_ms)),
    );
    a.add("outcome_event_id", new_ids(attempts.len()));
    static SQL: OnceLock<String> = OnceLock::new();
    let sql = SQL.get_or_init(|| a.numbered(WRITE_ROWS));
    let written: Vec<String> = sqlx::query_scalar_with(sql, a.args()?)
        .fetch_all(&mut *conn)
        .await?;
    Ok(written.into_iter().collect())
}

/// The arrays of one `write_rows` statement, each bound under a name. The
/// statement names them (`:message_id`), so adding one renumbers nothing:
/// `numbered` gives each name its `$n`, in the order they were added.
struct Arrays {
    names: Vec<&'static str>,
    args: PgArguments,
    failed: Option<String>,
}

impl Arrays {
    fn new() -> Self {
        Self {
            names: Vec::new(),
            args: PgArguments::default(),
            failed: None,
        }
    }

    /// Bind `values` as one array, named `name` in the statement.
    fn add<T>(&mut self, name: &'static str, values: impl IntoIterator<Item = T>)
    where
        T: for<'q> Encode<'q, Postgres> + Type<Postgres> + PgHasArrayType,
    {
        let values: Vec<T> = values.into_iter().collect();
        if let Err(e) = self.args.add(values) {
            self.failed.get_or_insert_with(|| format!("{name}: {e}"));
        }
        self.names.push(name);
    }

    /// `template` with each `:name` replaced by its `$n` (`::` casts are kept).
    fn numbered(&self, template: &str) -> String {
        let mut sql = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(at) = rest.find(':') {
            sql.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if let Some(cast) = after.strip_prefix(':') {
                sql.push_str("::");
                rest = cast;
                continue;
            }
            let len = after
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(after.len());
            let name = &after[..len];
            let n = self
                .names
                .iter()
                .position(|bound| *bound == name)
                .unwrap_or_else(|| panic!("`:{name}` is bound by no array"));
            sql.push_str(&format!("${}", n + 1));
            rest = &after[len..];
        }
        sql.push_str(rest);
        sql
    }

    /// The bound arrays, or the first that could not be bound.
    fn args(self) -> Result<PgArguments> {
        match self.failed {
            None => Ok(self.args),
            Some(e) => Err(StorageError::Unavailable(format!(
                "cannot bind an array: {e}"
            ))),
        }
    }
}

/// The statement of `write_rows`, its arrays by name. The committer's
/// connection plans it once (`plan_cache_mode = force_generic_plan`, with
/// `enable_seqscan = off`; see `PgStorage::connect`), so a plan made while
/// the tables were small does not scan all of `deliveries` for every batch
/// until the next ANALYZE.
const WRITE_ROWS: &str = "
WITH contacts AS (
    INSERT INTO participants (alias_key, alias, store, order_id, role, email, mode, created_at,
        expires_at)
    SELECT * FROM UNNEST(:contact_key::text[], :contact_alias::text[], :contact_store::text[],
                         :contact_order::text[], :contact_role::text[], :contact_email::text[],
                         :contact_mode::text[], :contact_created_at::int8[],
                         :contact_expires_at::int8[])
    ON CONFLICT (alias_key) DO NOTHING),
stored AS (
    INSERT INTO messages (id, queue_id, store, order_id, received_at, return_path, size, content)
    SELECT * FROM UNNEST(:message_id::text[], :message_queue_id::text[], :message_store::text[],
                         :message_order::text[], :message_received_at::int8[],
                         :message_return_path::text[], :message_size::int8[],
                         :message_content::bytea[])),
t AS (
    SELECT * FROM UNNEST(:message_id::text[], :message_store::text[], :message_order::text[],
                         :message_received_at::int8[], :entry_from::text[], :entry_to::text[],
                         :entry_subject::text[], :entry_first_words::text[],
                         :entry_attachments::text[], :entry_event_id::text[],
                         :entry_authentication::text[], :entry_flags::text[])
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
    FROM UNNEST(:delivery_id::text[], :delivery_message::text[], :delivery_rcpt_alias::text[],
                :delivery_rcpt_email::text[], :delivery_mail_from::text[], :delivery_at::int8[],
                :delivery_lease_owner::text[], :delivery_lease_until::int8[],
                :delivery_sender::text[])
         AS d(id, message_id, rcpt_alias, rcpt_email, mail_from, at, lease_owner, lease_until,
              sender_alias)),
outcome AS (
    SELECT * FROM UNNEST(:outcome_delivery::text[], :outcome_node::text[], :outcome_state::text[],
                         :outcome_reply::text[], :outcome_at::int8[], :outcome_next_at::int8[],
                         :outcome_event_id::text[])
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_numbers_in_the_order_bound_and_casts_stay() {
        let mut a = Arrays::new();
        a.add("first", ["x"]);
        a.add("second_one", [1i64]);
        assert_eq!(
            a.numbered("SELECT :second_one::int8[], :first::text[], :first"),
            "SELECT $2::int8[], $1::text[], $1"
        );
        assert!(a.args().is_ok());
    }
}
