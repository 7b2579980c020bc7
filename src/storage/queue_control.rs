//! An operator's hand on the queue (`ct-relay queue …`): attempt one
//! delivery now, hold it, release it, or delete it. A held delivery is not
//! claimed (`held_at`, see `queries`); a deleted one ends as `failed` with
//! the reply saying so, on the timeline and announced to the store's
//! webhook like any other end.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::queries::{claim, Claim};
use super::rows::{self, to_ms, Columns};
use super::schema;
use super::sql::{Backend, SqlConn, Stmt};
use super::{DeliveryJob, DeliveryState, DeliveryStatus, Result, WebhookEventKind};

/// The reply a delivery deleted from the queue ends with.
pub const DELETED_REPLY: &str = "deleted from the queue by an operator (ct-relay queue delete)";

/// What became of an operator's request about one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueChange {
    /// Done.
    Done,
    /// No delivery has that id.
    Unknown,
    /// It is not waiting: delivered or failed already (or not held, for a
    /// release).
    NotWaiting,
    /// A node is attempting it right now (its lease runs); try again.
    InFlight,
}

/// Hold, release, delete, and claim one delivery for an attempt now.
#[async_trait]
pub trait QueueControl: Send + Sync {
    /// Lease the waiting delivery `delivery_id` to `node` until
    /// `lease_until`, due or not, held or not, unless another node's lease
    /// on it runs. Its job, or why not.
    async fn claim_delivery(
        &self,
        node: &str,
        delivery_id: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<std::result::Result<DeliveryJob, QueueChange>>;
    /// Stop a waiting delivery from being attempted until released. An
    /// attempt in flight finishes.
    async fn queue_hold(&self, delivery_id: &str, now: DateTime<Utc>) -> Result<QueueChange>;
    /// Let a held delivery be attempted again, due now.
    async fn queue_release(&self, delivery_id: &str, now: DateTime<Utc>) -> Result<QueueChange>;
    /// Where delivery `delivery_id` stands, if there is one.
    async fn delivery_status(&self, delivery_id: &str) -> Result<Option<DeliveryStatus>>;
    /// End a waiting delivery without attempting it: `failed`, with
    /// `DELETED_REPLY`, and no failure notice to the sender. Not while an
    /// attempt is in flight.
    async fn queue_delete(&self, delivery_id: &str, now: DateTime<Utc>) -> Result<QueueChange>;
}

/// A delivery as these requests see it.
struct Found {
    message_id: String,
    store: String,
    order: String,
    waiting: bool,
    leased: bool,
}

async fn find(conn: &mut impl SqlConn, id: &str, now: DateTime<Utc>) -> Result<Option<Found>> {
    let stmt = Stmt::new(
        "SELECT d.message_id, m.store, m.order_id, d.state, d.lease_until
         FROM deliveries d JOIN messages m ON m.id = d.message_id WHERE d.id = $1",
    )
    .text(id);
    let Some(r) = conn.fetch_optional(stmt).await? else {
        return Ok(None);
    };
    Ok(Some(Found {
        message_id: r.text("message_id")?,
        store: r.text("store")?,
        order: r.text("order_id")?,
        waiting: matches!(
            rows::state(&r)?,
            DeliveryState::Queued | DeliveryState::Retrying
        ),
        leased: r.opt_int("lease_until")?.is_some_and(|t| t > to_ms(now)),
    }))
}

/// Run `sql` (`$1` now, `$2` the delivery's id): `Done` when it changed
/// the delivery, else what `explain` makes of the delivery as it stands.
async fn change_or_explain(
    conn: &mut impl SqlConn,
    sql: &'static str,
    id: &str,
    now: DateTime<Utc>,
    explain: impl FnOnce(Found) -> QueueChange + Send,
) -> Result<QueueChange> {
    let stmt = Stmt::new(sql).int(to_ms(now)).text(id);
    if conn.execute(stmt).await? > 0 {
        return Ok(QueueChange::Done);
    }
    Ok(match find(conn, id, now).await? {
        None => QueueChange::Unknown,
        Some(found) => explain(found),
    })
}

/// End delivery `id` of `message_id` (order `order` of `store`) as failed
/// with `reply`: an attempt on record, and the store's webhook told when
/// the message is on the timeline.
pub(crate) async fn end_delivery(
    conn: &mut impl SqlConn,
    (id, message_id): (&str, &str),
    (store, order): (&str, &str),
    reply: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let at = to_ms(now);
    let stmt = Stmt::new(
        "UPDATE deliveries SET state = 'failed', last_reply = $1, updated_at = $2,
             lease_owner = NULL, lease_until = NULL, held_at = NULL
         WHERE id = $3",
    )
    .text(reply)
    .int(at)
    .text(id);
    conn.execute(stmt).await?;
    let stmt = Stmt::new(
        "INSERT INTO delivery_attempts (delivery_id, at, state, reply) VALUES ($1, $2, 'failed', $3)",
    )
    .text(id)
    .int(at)
    .text(reply);
    conn.execute(stmt).await?;
    let on_timeline = Stmt::new("SELECT id FROM timeline_entries WHERE id = $1").text(message_id);
    if conn.fetch_optional(on_timeline).await?.is_some() {
        super::outbox::insert_webhook_event(
            conn,
            store,
            order,
            message_id,
            WebhookEventKind::DeliveryUpdated,
            now,
        )
        .await?;
    }
    Ok(())
}

#[async_trait]
impl<B: Backend> QueueControl for B {
    async fn claim_delivery(
        &self,
        node: &str,
        delivery_id: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<std::result::Result<DeliveryJob, QueueChange>> {
        let stmt = claim::<B>(
            Claim {
                table: "deliveries",
                due: "id = $5 AND state IN ('queued', 'retrying')",
                order: "id",
                columns: schema::DELIVERY_JOB,
            },
            node,
            now,
            lease_until,
            1,
        )
        .text(delivery_id);
        let mut writer = self.writer().await?;
        if let Some(row) = writer.fetch_optional(stmt).await? {
            return Ok(Ok(rows::delivery_job(&row, self.keyring())?));
        }
        Ok(Err(match find(&mut *writer, delivery_id, now).await? {
            None => QueueChange::Unknown,
            Some(f) if !f.waiting => QueueChange::NotWaiting,
            Some(_) => QueueChange::InFlight,
        }))
    }

    async fn delivery_status(&self, delivery_id: &str) -> Result<Option<DeliveryStatus>> {
        let sql = format!(
            "SELECT {} FROM deliveries WHERE id = $1",
            schema::DELIVERY_STATUS
        );
        let stmt = Stmt::new(sql).text(delivery_id);
        let row = self.reader().await?.fetch_optional(stmt).await?;
        row.as_ref().map(rows::delivery_status).transpose()
    }

    async fn queue_hold(&self, delivery_id: &str, now: DateTime<Utc>) -> Result<QueueChange> {
        let sql = "UPDATE deliveries SET held_at = $1, updated_at = $1
                   WHERE id = $2 AND state IN ('queued', 'retrying') AND held_at IS NULL";
        let mut writer = self.writer().await?;
        change_or_explain(&mut *writer, sql, delivery_id, now, |f| match f.waiting {
            true => QueueChange::Done, // held already
            false => QueueChange::NotWaiting,
        })
        .await
    }

    async fn queue_release(&self, delivery_id: &str, now: DateTime<Utc>) -> Result<QueueChange> {
        let sql = "UPDATE deliveries SET held_at = NULL, updated_at = $1,
                       next_attempt_at = CASE WHEN state IN ('queued', 'retrying') THEN $1
                                              ELSE next_attempt_at END
                   WHERE id = $2 AND held_at IS NOT NULL";
        let mut writer = self.writer().await?;
        change_or_explain(&mut *writer, sql, delivery_id, now, |_| {
            QueueChange::NotWaiting
        })
        .await
    }

    async fn queue_delete(&self, delivery_id: &str, now: DateTime<Utc>) -> Result<QueueChange> {
        let mut writer = self.writer().await?;
        let mut tx = B::begin_write(&mut writer).await?;
        let change = match find(&mut *tx, delivery_id, now).await? {
            None => QueueChange::Unknown,
            Some(f) if !f.waiting => QueueChange::NotWaiting,
            Some(f) if f.leased => QueueChange::InFlight,
            Some(f) => {
                end_delivery(
                    &mut *tx,
                    (delivery_id, &f.message_id),
                    (&f.store, &f.order),
                    DELETED_REPLY,
                    now,
                )
                .await?;
                QueueChange::Done
            }
        };
        B::commit(tx).await?;
        Ok(change)
    }
}
