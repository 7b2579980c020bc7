//! The group commit on SQLite. The driver runs each command on its worker
//! thread, and under load a round trip to that thread (a wake-up there and
//! one back) cost a quarter of a millisecond, so a batch is one command:
//! one SQL text with one multi-row statement per table, inside `BEGIN
//! IMMEDIATE … COMMIT`. Rare writes (refusals, bounces, failures that notify
//! the sender) go into an ordinary transaction beside the same text.

use std::collections::HashSet;

use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, Connection, Encode, Row, Sqlite, SqliteConnection, Type};

use super::WriterState;
use crate::storage::rows::{json, to_ms};
use crate::storage::sorted::{applied, rare_writes, sort, Outcome};
use crate::storage::{AcceptedMessage, Result, StorageError, WebhookEventKind, Write};

/// Most rows in one statement: well under SQLite's 32766 parameters for
/// the widest table (11 columns), however many recipients a batch has.
const MAX_ROWS: usize = 256;

/// Write `batch` in one transaction; per write, whether it applied.
pub(super) async fn apply(writer: &mut WriterState, batch: &[Write]) -> Result<Vec<bool>> {
    let sorted = sort(batch);
    let (recorded, bounced) = if sorted.rare {
        with_rare_writes(&mut writer.conn, batch, &sorted.messages, &sorted.outcomes).await?
    } else {
        let recorded = alone(writer, &sorted.messages, &sorted.outcomes).await?;
        (recorded, HashSet::new())
    };
    Ok(applied(batch, &recorded, &bounced))
}

/// The common batch, one round trip: its own transaction in its text. A
/// failed text is rolled back at once; one whose future was dropped before
/// it finished is rolled back by the next writer (`maybe_in_transaction`).
async fn alone(
    writer: &mut WriterState,
    messages: &[&AcceptedMessage],
    attempts: &[Outcome<'_>],
) -> Result<HashSet<String>> {
    let mut text = Text::new("BEGIN IMMEDIATE;\n");
    text.messages(messages)?;
    text.attempts(attempts)?;
    text.sql.push_str("COMMIT;\n");
    writer.maybe_in_transaction = true;
    let result = text.run(&mut writer.conn).await;
    if result.is_err() {
        // Ends the transaction the text began, if it got that far.
        let _ = sqlx::query("ROLLBACK").execute(&mut writer.conn).await;
    }
    writer.maybe_in_transaction = false;
    result
}

/// A batch with rare writes: the text inside a transaction, then those
/// writes one by one. Returns the deliveries whose attempt outcome applied,
/// and those whose bounce did.
async fn with_rare_writes(
    conn: &mut SqliteConnection,
    batch: &[Write],
    messages: &[&AcceptedMessage],
    attempts: &[Outcome<'_>],
) -> Result<(HashSet<String>, HashSet<String>)> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let mut text = Text::new("");
    text.messages(messages)?;
    text.attempts(attempts)?;
    let mut recorded = text.run(&mut tx).await?;
    let bounced = rare_writes(&mut *tx, batch, &mut recorded, async |conn, one| {
        let mut text = Text::new("");
        text.attempts(std::slice::from_ref(&one))?;
        Ok(!text.run(conn).await?.is_empty())
    })
    .await?;
    tx.commit().await?;
    Ok((recorded, bounced))
}

/// An SQL text and its parameters, bound in the order of the `?` in it.
struct Text<'q> {
    sql: String,
    args: SqliteArguments<'q>,
}

impl<'q> Text<'q> {
    fn new(start: &str) -> Self {
        Self {
            sql: start.to_string(),
            args: SqliteArguments::default(),
        }
    }

    fn bind<T: Encode<'q, Sqlite> + Type<Sqlite> + 'q>(&mut self, value: T) -> Result<()> {
        self.args
            .add(value)
            .map_err(|e| StorageError::Unavailable(format!("cannot bind a value: {e}")))
    }

    /// One table's rows: `INSERT … SELECT … FROM (VALUES row, …) v …`.
    /// The last statement's rows are padded with NULLs to a power of two
    /// (which `tail` must drop), so texts come in few shapes and their
    /// prepared statements are reused from the driver's cache.
    fn rows<R>(
        &mut self,
        part: &Part,
        rows: impl ExactSizeIterator<Item = R>,
        mut bind: impl FnMut(&mut Self, R) -> Result<()>,
    ) -> Result<()> {
        let count = rows.len();
        let mut left = count;
        let mut padded = 0;
        while left > 0 {
            let n = left.min(MAX_ROWS);
            let shape = n.next_power_of_two();
            padded += shape;
            left -= n;
            self.sql.push_str(&part.head);
            self.sql.push_str(" FROM (VALUES ");
            for i in 0..shape {
                if i > 0 {
                    self.sql.push_str(", ");
                }
                self.sql.push_str(&part.row);
            }
            self.sql.push_str(") v ");
            self.sql.push_str(&part.tail);
            self.sql.push_str(";\n");
        }
        for row in rows {
            bind(self, row)?;
        }
        for _ in 0..(padded - count) * part.width() {
            self.bind(None::<i64>)?;
        }
        Ok(())
    }

    /// Accepted messages: contacts met on them, the messages, their
    /// timeline entries, the events announcing them to stores with a
    /// webhook, and their deliveries.
    fn messages(&mut self, ms: &[&'q AcceptedMessage]) -> Result<()> {
        let contacts = ms.iter().flat_map(|m| &m.new_participants);
        let contacts: Vec<_> = contacts.collect();
        self.rows(
            &Part::insert(
                "participants (alias_key, alias, store, order_id, role, email, mode, created_at,
                 expires_at)",
                9,
                " ON CONFLICT (alias_key) DO NOTHING",
            ),
            contacts.into_iter(),
            |t, p| {
                t.bind(p.key())?;
                t.bind(p.alias.as_str())?;
                t.bind(p.store.as_str())?;
                t.bind(p.order.as_str())?;
                t.bind(p.role.as_str())?;
                t.bind(p.email.as_str())?;
                t.bind(p.mode.as_str())?;
                t.bind(to_ms(p.created_at))?;
                t.bind(to_ms(p.expires_at))
            },
        )?;
        self.rows(
            &Part::insert(
                "messages (id, queue_id, store, order_id, received_at, return_path, size, content)",
                8,
                "",
            ),
            ms.iter(),
            |t, m| {
                t.bind(m.id.as_str())?;
                t.bind(m.queue_id.as_str())?;
                t.bind(m.store.as_str())?;
                t.bind(m.order.as_str())?;
                t.bind(to_ms(m.received_at))?;
                t.bind(m.return_path.as_str())?;
                t.bind(m.content.len() as i64)?;
                t.bind(&m.content[..])
            },
        )?;
        self.rows(
            &Part::insert(
                "timeline_entries (id, store, order_id, at, message_id, from_alias, to_aliases,
                 subject, first_words, attachment_names, authentication, flags)",
                12,
                "",
            ),
            ms.iter(),
            |t, m| {
                let e = &m.entry;
                t.bind(m.id.as_str())?;
                t.bind(m.store.as_str())?;
                t.bind(m.order.as_str())?;
                t.bind(to_ms(m.received_at))?;
                t.bind(m.id.as_str())?;
                t.bind(e.from.as_ref().map(json))?;
                t.bind(json(&e.to))?;
                t.bind(e.subject.as_str())?;
                t.bind(e.first_words.as_str())?;
                t.bind(json(&e.attachment_names))?;
                t.bind(e.authentication.as_ref().map(json))?;
                t.bind((!e.flags.is_empty()).then(|| json(&e.flags)))
            },
        )?;
        self.rows(
            &Part::new(
                "INSERT INTO webhook_events (id, store, order_id, entry_id, kind, created_at,
                       state, next_attempt_at, updated_at)
                   SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6,
                       'pending', v.column6, v.column6",
                format!(
                    "(?, ?, ?, ?, '{}', ?)",
                    WebhookEventKind::MessageAccepted.as_str()
                ),
                "JOIN stores s ON s.store = v.column2 WHERE s.webhook_url IS NOT NULL",
            ),
            ms.iter(),
            |t, m| {
                t.bind(ulid::Ulid::new().to_string())?;
                t.bind(m.store.as_str())?;
                t.bind(m.order.as_str())?;
                t.bind(m.id.as_str())?;
                t.bind(to_ms(m.received_at))
            },
        )?;
        let deliveries: Vec<_> = ms
            .iter()
            .flat_map(|m| m.deliveries.iter().map(move |d| (*m, d)))
            .collect();
        self.rows(
            &Part {
                row: "(?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?)".into(),
                ..Part::insert(
                    "deliveries (id, message_id, rcpt_alias, rcpt_email, mail_from, state,
                     next_attempt_at, created_at, updated_at, lease_owner, lease_until, sender_alias)",
                    0,
                    "",
                )
            },
            deliveries.into_iter(),
            |t, (m, d)| {
                let at = to_ms(m.received_at);
                t.bind(d.id.as_str())?;
                t.bind(m.id.as_str())?;
                t.bind(d.rcpt_alias.as_str())?;
                t.bind(d.rcpt_email.as_str())?;
                t.bind(d.mail_from.as_str())?;
                t.bind(at)?;
                t.bind(at)?;
                t.bind(at)?;
                t.bind(m.lease.as_ref().map(|l| l.owner.as_str()))?;
                t.bind(m.lease.as_ref().map(|l| to_ms(l.until)))?;
                t.bind(d.sender_alias.as_deref())
            },
        )
    }

    /// Attempt outcomes, each written only where its node still holds the
    /// lease: the webhook event when the state changes and the attempt row
    /// (both read the delivery as it was), then the update, which returns
    /// the ids it changed.
    fn attempts(&mut self, attempts: &[Outcome<'q>]) -> Result<()> {
        self.rows(
            &Part::new(
                "INSERT INTO webhook_events (id, store, order_id, entry_id, kind, created_at,
                       state, next_attempt_at, updated_at)
                   SELECT v.column1, m.store, m.order_id, m.id, v.column5, v.column6,
                       'pending', v.column6, v.column6",
                format!(
                    "(?, ?, ?, ?, '{}', ?)",
                    WebhookEventKind::DeliveryUpdated.as_str()
                ),
                "JOIN deliveries d ON d.id = v.column2 JOIN messages m ON m.id = d.message_id
                   JOIN stores s ON s.store = m.store JOIN timeline_entries t ON t.id = m.id
                   WHERE d.lease_owner = v.column3 AND d.state <> v.column4
                     AND s.webhook_url IS NOT NULL",
            ),
            attempts.iter(),
            |t, a| {
                t.bind(ulid::Ulid::new().to_string())?;
                t.bind(a.delivery_id)?;
                t.bind(a.node)?;
                t.bind(a.record.state.as_str())?;
                t.bind(to_ms(a.record.at))
            },
        )?;
        self.rows(
            &Part::new(
                "INSERT INTO delivery_attempts (delivery_id, at, state, reply)
                   SELECT v.column1, v.column2, v.column3, v.column4",
                Part::placeholders(5),
                "JOIN deliveries d ON d.id = v.column1 WHERE d.lease_owner = v.column5",
            ),
            attempts.iter(),
            |t, a| {
                t.bind(a.delivery_id)?;
                t.bind(to_ms(a.record.at))?;
                t.bind(a.record.state.as_str())?;
                t.bind(a.record.reply.as_str())?;
                t.bind(a.node)
            },
        )?;
        self.rows(
            &Part::new(
                "UPDATE deliveries SET state = v.column2, attempts = attempts + 1,
                       last_reply = v.column3, updated_at = v.column4,
                       next_attempt_at = COALESCE(v.column5, deliveries.next_attempt_at),
                       lease_owner = NULL, lease_until = NULL",
                Part::placeholders(6),
                "WHERE deliveries.id = v.column1 AND deliveries.lease_owner = v.column6
                   RETURNING deliveries.id",
            ),
            attempts.iter(),
            |t, a| {
                t.bind(a.delivery_id)?;
                t.bind(a.record.state.as_str())?;
                t.bind(a.record.reply.as_str())?;
                t.bind(to_ms(a.record.at))?;
                t.bind(a.record.next_attempt_at.map(to_ms))?;
                t.bind(a.node)
            },
        )
    }

    /// Run the text as one command; the ids of the deliveries updated.
    async fn run(self, conn: &mut SqliteConnection) -> Result<HashSet<String>> {
        if self.sql.trim().is_empty() {
            return Ok(HashSet::new());
        }
        let rows = sqlx::query_with(&self.sql, self.args)
            .fetch_all(&mut *conn)
            .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).map_err(StorageError::from))
            .collect()
    }
}

/// One table's statement around its rows: `head FROM (VALUES …) v tail`.
struct Part {
    /// `INSERT INTO t (…) SELECT …`, or `UPDATE t SET …`.
    head: String,
    /// One row's values.
    row: String,
    /// Joins and conditions on `v`; must drop the rows of NULLs that pad
    /// the last statement.
    tail: String,
}

impl Part {
    fn new(head: &str, row: String, tail: &str) -> Self {
        Self {
            head: head.to_string(),
            row,
            tail: tail.to_string(),
        }
    }

    /// `INSERT INTO table SELECT *` of rows of `width` values, then
    /// `on_conflict`.
    fn insert(table: &str, width: usize, on_conflict: &str) -> Self {
        Self {
            head: format!("INSERT INTO {table} SELECT *"),
            row: Self::placeholders(width),
            tail: format!("WHERE v.column1 IS NOT NULL{on_conflict}"),
        }
    }

    fn placeholders(width: usize) -> String {
        format!("({})", vec!["?"; width].join(", "))
    }

    /// Values in one row.
    fn width(&self) -> usize {
        self.row.matches('?').count()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn sql_for(messages: &[AcceptedMessage]) -> String {
        let refs: Vec<_> = messages.iter().collect();
        let mut text = Text::new("");
        text.messages(&refs).unwrap();
        text.sql
    }

    #[test]
    fn batches_of_similar_size_share_one_text() {
        let five: Vec<_> = (0..5)
            .map(|i| AcceptedMessage::sample(&i.to_string(), 1))
            .collect();
        let seven: Vec<_> = (0..7)
            .map(|i| AcceptedMessage::sample(&i.to_string(), 1))
            .collect();
        let nine: Vec<_> = (0..9)
            .map(|i| AcceptedMessage::sample(&i.to_string(), 1))
            .collect();
        assert_eq!(sql_for(&five), sql_for(&seven), "both padded to 8 rows");
        assert_ne!(sql_for(&seven), sql_for(&nine), "9 rows take 16");
    }

    #[tokio::test]
    async fn padded_and_split_statements_write_every_row_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = super::super::SqliteStorage::migrated_in(dir.path(), Duration::from_secs(5)).await;
        // 3 messages (padded to 4 rows) with 1 + 2 + 600 deliveries (603:
        // statements of 256, 256 and 91 padded to 128).
        let batch: Vec<_> = [1, 2, 600]
            .iter()
            .enumerate()
            .map(|(i, n)| Write::Accept(Box::new(AcceptedMessage::sample(&format!("m{i}"), *n))))
            .collect();
        let applied = crate::storage::BatchWriter::apply(&db, &batch)
            .await
            .unwrap();
        assert_eq!(applied, vec![true; 3]);
        let count = |table: &'static str| {
            let db = &db;
            async move {
                sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}"))
                    .fetch_one(&mut *db.reader().await.unwrap())
                    .await
                    .unwrap()
            }
        };
        assert_eq!(count("messages").await, 3);
        assert_eq!(count("timeline_entries").await, 3);
        assert_eq!(count("deliveries").await, 603);
    }
}
