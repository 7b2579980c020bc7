//! The `Storage` trait, written once for both databases over `Backend`
//! (see `sql`): SQL both accept, the few differences (claiming, `MAX` vs
//! `GREATEST`, migrations) taken from the backend.

use chrono::{DateTime, Utc};

use super::rows::{self, to_ms, Columns};
use super::schema;
use super::sql::{Backend, SqlConn, Stmt};
use super::{
    DeliveryJob, OrderAtRcpt, OrderExpiry, PurgeCounts, QueueEntry, Result, Storage, StorageError,
    StoreSummary, StoredMessage,
};
use crate::alias::{MaskMode, Participant};

/// Give back leases on `table` (deliveries or webhook events): `node`'s,
/// or every node's.
pub(crate) async fn release_leases_in<B: Backend>(
    backend: &B,
    table: &'static str,
    node: Option<&str>,
) -> Result<u64> {
    let sql = format!(
        "UPDATE {table} SET lease_owner = NULL, lease_until = NULL
         WHERE lease_owner IS NOT NULL AND (CAST($1 AS TEXT) IS NULL OR lease_owner = $1)"
    );
    backend
        .writer()
        .await?
        .execute(Stmt::new(sql).opt_text(node))
        .await
}

/// What a claim leases: rows of `table` that are `due` (`$3` is now), the
/// earliest by `order` first, returning `columns`.
pub(crate) struct Claim {
    pub(crate) table: &'static str,
    pub(crate) due: &'static str,
    pub(crate) order: &'static str,
    pub(crate) columns: &'static str,
}

/// Lease up to `limit` rows `what` names to `node` until `lease_until`:
/// rows whose lease is free, run out or held by a silent node, locked
/// against other claimers where several nodes claim at once.
pub(crate) fn claim<B: Backend>(
    what: Claim,
    node: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> Stmt<'static> {
    let Claim {
        table,
        due,
        order,
        columns,
    } = what;
    let sql = format!(
        "UPDATE {table} SET lease_owner = $1, lease_until = $2
         WHERE id IN (
             SELECT id FROM {table} WHERE {due} AND {free}
             ORDER BY {order} LIMIT $4 {lock})
         RETURNING {columns}",
        free = super::nodes::LEASE_FREE,
        lock = B::CLAIM_LOCK,
    );
    Stmt::new(sql)
        .text(node)
        .int(to_ms(lease_until))
        .int(to_ms(now))
        .int(i64::from(limit))
}

/// The purge, a statement per table (`$1` the cutoff, `$2` the limit).
/// Deletes cascade from messages to deliveries, attempts and entries.
/// Nothing of an order on legal hold is deleted.
const PURGE_ALIASES: &str = "DELETE FROM participants WHERE alias_key IN
    (SELECT alias_key FROM participants p WHERE expires_at < $1
       AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.store = p.store AND h.order_id = p.order_id)
     LIMIT $2)";
/// Messages whose deliveries are all final.
const PURGE_MESSAGES: &str = "DELETE FROM messages WHERE id IN
    (SELECT id FROM messages m WHERE received_at < $1
       AND NOT EXISTS (SELECT 1 FROM deliveries d
                       WHERE d.message_id = m.id AND d.state IN ('queued', 'retrying'))
       AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.store = m.store AND h.order_id = m.order_id)
     LIMIT $2)";
/// Timeline entries with no message: refusals and events.
const PURGE_REFUSALS: &str = "DELETE FROM timeline_entries WHERE id IN
    (SELECT id FROM timeline_entries t WHERE message_id IS NULL AND at < $1
       AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.store = t.store AND h.order_id = t.order_id)
     LIMIT $2)";
/// Messages of erased people (see `erasure`) whose last delivery ended:
/// their text goes. Held orders are kept as they are.
const FINISH_ERASURES: &str = "UPDATE messages SET erasure = 'done', content = $1 WHERE id IN
    (SELECT id FROM messages m WHERE erasure = 'pending'
       AND NOT EXISTS (SELECT 1 FROM deliveries d
                       WHERE d.message_id = m.id AND d.state IN ('queued', 'retrying'))
     LIMIT $2)";
const PURGE_WEBHOOK_EVENTS: &str = "DELETE FROM webhook_events WHERE id IN
    (SELECT id FROM webhook_events WHERE created_at < $1 LIMIT $2)";

/// One purge statement (`$1` the cutoff, `$2` the limit); rows deleted.
async fn delete_batch(
    conn: &mut impl SqlConn,
    sql: &'static str,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<u64> {
    conn.execute(Stmt::new(sql).int(to_ms(before)).int(limit))
        .await
}

#[async_trait::async_trait]
impl<B: Backend> Storage for B {
    async fn migrate(&self) -> Result<()> {
        self.run_migrations().await
    }

    fn single_node(&self) -> bool {
        B::SINGLE_NODE
    }

    async fn ping(&self) -> Result<()> {
        self.reader().await?.execute(Stmt::new("SELECT 1")).await?;
        Ok(())
    }

    async fn probe_write(&self, node: &str) -> Result<()> {
        let stmt = Stmt::new(
            "INSERT INTO write_probes (node, at) VALUES ($1, $2)
             ON CONFLICT (node) DO UPDATE SET at = excluded.at",
        )
        .text(node)
        .int(to_ms(Utc::now()));
        self.writer().await?.execute(stmt).await?;
        Ok(())
    }

    async fn message(&self, message_id: &str) -> Result<Option<StoredMessage>> {
        let sql = format!("SELECT {} FROM messages WHERE id = $1", schema::MESSAGE);
        let row = self
            .reader()
            .await?
            .fetch_optional(Stmt::new(sql).text(message_id))
            .await?;
        row.map(|r| {
            Ok(StoredMessage {
                store: r.text("store")?,
                order: r.text("order_id")?,
                return_path: self.keyring().open_address(&r.text("return_path")?)?,
                received_at: rows::time(&r, "received_at")?,
                content: self.keyring().open_message(r.bytes("content")?)?,
                erased: r.opt_text("erasure")?.as_deref() == Some("done"),
            })
        })
        .transpose()
    }

    async fn store_mode(&self, store: &str) -> Result<MaskMode> {
        let row = self
            .reader()
            .await?
            .fetch_optional(Stmt::new("SELECT mask_mode FROM stores WHERE store = $1").text(store))
            .await?;
        row.map_or(Ok(MaskMode::Hard), |r| rows::mask_mode(&r, "mask_mode"))
    }

    async fn set_store_mode(&self, store: &str, mode: MaskMode) -> Result<()> {
        let stmt = Stmt::new(
            "INSERT INTO stores (store, mask_mode, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (store) DO UPDATE SET mask_mode = excluded.mask_mode, updated_at = excluded.updated_at",
        )
        .text(store)
        .text(mode.as_str())
        .int(to_ms(Utc::now()));
        self.writer().await?.execute(stmt).await?;
        Ok(())
    }

    async fn store_summary(&self, store: &str) -> Result<StoreSummary> {
        let stmt = Stmt::new(
            "SELECT (SELECT mask_mode FROM stores WHERE store = $1) AS mask_mode,
                    (SELECT webhook_url FROM stores WHERE store = $1) AS webhook_url,
                    COUNT(*) AS aliases, COUNT(DISTINCT order_id) AS orders
             FROM participants WHERE store = $1",
        )
        .text(store);
        let row = self.reader().await?.fetch_one(stmt).await?;
        let configured = row.opt_text("mask_mode")?.is_some();
        Ok(StoreSummary {
            store: store.to_string(),
            mask_mode: if configured {
                rows::mask_mode(&row, "mask_mode")?
            } else {
                MaskMode::Hard
            },
            configured,
            webhook_url: row.opt_text("webhook_url")?,
            aliases: row.int("aliases")? as u64,
            orders: row.int("orders")? as u64,
        })
    }

    async fn ensure_participants(&self, ps: &[Participant]) -> Result<Vec<Participant>> {
        super::participants::ensure_in_one_transaction(self, ps).await
    }

    async fn find_alias(&self, alias: &str) -> Result<Option<Participant>> {
        let sql = format!(
            "SELECT {} FROM participants WHERE alias_key = $1",
            schema::PARTICIPANT
        );
        let row = self
            .reader()
            .await?
            .fetch_optional(Stmt::new(sql).text(alias.to_lowercase()))
            .await?;
        row.as_ref()
            .map(|r| rows::participant(r, self.keyring()))
            .transpose()
    }

    async fn find_alias_with_order(
        &self,
        alias: &str,
    ) -> Result<Option<(Participant, OrderAtRcpt)>> {
        // The store's policy rides along on the first row.
        let sql = format!(
            "SELECT {},
                    (SELECT s.policy FROM stores s WHERE s.store = p.store) AS store_policy
             FROM participants p
             WHERE (store, order_id) = (SELECT store, order_id FROM participants WHERE alias_key = $1)
             ORDER BY created_at",
            schema::PARTICIPANT
        );
        let key = alias.to_lowercase();
        let found = self
            .reader()
            .await?
            .fetch_all(Stmt::new(sql).text(&key))
            .await?;
        let participants = found
            .iter()
            .map(|r| rows::participant(r, self.keyring()))
            .collect::<Result<Vec<_>>>()?;
        let policy = match found
            .first()
            .map(|r| r.opt_text("store_policy"))
            .transpose()?
            .flatten()
        {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| StorageError::Corrupt(format!("store policy: {e}")))?,
            None => Default::default(),
        };
        Ok(participants
            .iter()
            .find(|p| p.key() == key)
            .cloned()
            .map(|p| {
                (
                    p,
                    OrderAtRcpt {
                        participants,
                        policy,
                    },
                )
            }))
    }

    async fn disable_alias(&self, alias: &str, now: DateTime<Utc>) -> Result<bool> {
        let stmt = Stmt::new(
            "UPDATE participants SET disabled_at = COALESCE(disabled_at, $1) WHERE alias_key = $2",
        )
        .int(to_ms(now))
        .text(alias.to_lowercase());
        Ok(self.writer().await?.execute(stmt).await? > 0)
    }

    async fn change_address(&self, alias: &str, email: &str) -> Result<Option<Participant>> {
        let mut writer = self.writer().await?;
        super::suppression::change_address(&mut *writer, self.keyring(), alias, email).await
    }

    async fn order_participants(&self, store: &str, order: &str) -> Result<Vec<Participant>> {
        let sql = format!(
            "SELECT {} FROM participants WHERE store = $1 AND order_id = $2 ORDER BY created_at",
            schema::PARTICIPANT
        );
        let found = self
            .reader()
            .await?
            .fetch_all(Stmt::new(sql).text(store).text(order))
            .await?;
        found
            .iter()
            .map(|r| rows::participant(r, self.keyring()))
            .collect()
    }

    async fn set_order_expiry(&self, store: &str, order: &str, expiry: OrderExpiry) -> Result<u64> {
        let sql = match expiry {
            OrderExpiry::NoLaterThan(_) => {
                "UPDATE participants SET expires_at = $1
                 WHERE store = $2 AND order_id = $3 AND expires_at > $1"
            }
            OrderExpiry::Until(_) => {
                "UPDATE participants SET expires_at = $1 WHERE store = $2 AND order_id = $3"
            }
        };
        let (OrderExpiry::NoLaterThan(at) | OrderExpiry::Until(at)) = expiry;
        let stmt = Stmt::new(sql).int(to_ms(at)).text(store).text(order);
        self.writer().await?.execute(stmt).await
    }

    async fn stores_with_order(&self, order: &str) -> Result<Vec<String>> {
        let stmt =
            Stmt::new("SELECT DISTINCT store FROM participants WHERE order_id = $1 ORDER BY store")
                .text(order);
        let found = self.reader().await?.fetch_all(stmt).await?;
        found.iter().map(|r| r.text("store")).collect()
    }

    async fn claim_due(
        &self,
        node: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DeliveryJob>> {
        let stmt = claim::<B>(
            Claim {
                table: "deliveries",
                due:
                    "state IN ('queued', 'retrying') AND next_attempt_at <= $3 AND held_at IS NULL",
                order: "next_attempt_at",
                columns: schema::DELIVERY_JOB,
            },
            node,
            now,
            lease_until,
            limit,
        );
        let claimed = self.writer().await?.fetch_all(stmt).await?;
        claimed
            .iter()
            .map(|r| rows::delivery_job(r, self.keyring()))
            .collect()
    }

    async fn delivery(&self, delivery_id: &str) -> Result<Option<DeliveryJob>> {
        let sql = format!(
            "SELECT {} FROM deliveries WHERE id = $1",
            schema::DELIVERY_JOB
        );
        let row = self
            .reader()
            .await?
            .fetch_optional(Stmt::new(sql).text(delivery_id))
            .await?;
        row.as_ref()
            .map(|r| rows::delivery_job(r, self.keyring()))
            .transpose()
    }

    async fn message_content(&self, message_id: &str) -> Result<Option<Vec<u8>>> {
        let stmt = Stmt::new("SELECT content FROM messages WHERE id = $1").text(message_id);
        let row = self.reader().await?.fetch_optional(stmt).await?;
        row.map(|r| self.keyring().open_message(r.bytes("content")?))
            .transpose()
    }

    async fn release_leases(&self, node: Option<&str>) -> Result<u64> {
        release_leases_in(self, "deliveries", node).await
    }

    async fn postpone(
        &self,
        node: &str,
        delivery_ids: &[String],
        at: DateTime<Utc>,
    ) -> Result<u64> {
        if delivery_ids.is_empty() {
            return Ok(0);
        }
        let n = delivery_ids.len();
        let sql = format!(
            "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL, next_attempt_at = ${}
             WHERE id IN ({}) AND lease_owner = ${} AND state IN ('queued', 'retrying')",
            n + 1,
            super::placeholders::list(n),
            n + 2
        );
        let stmt = delivery_ids
            .iter()
            .fold(Stmt::new(sql), |s, id| s.text(id.as_str()))
            .int(to_ms(at))
            .text(node);
        self.writer().await?.execute(stmt).await
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>> {
        let sql = format!(
            "SELECT MIN({}(next_attempt_at, COALESCE(lease_until, 0))) AS due
             FROM deliveries WHERE state IN ('queued', 'retrying') AND held_at IS NULL",
            B::GREATEST
        );
        let row = self.reader().await?.fetch_one(Stmt::new(sql)).await?;
        row.opt_int("due")?.map(rows::from_ms).transpose()
    }

    async fn queue_list(&self, store: Option<&str>, limit: u32) -> Result<Vec<QueueEntry>> {
        let sql = format!(
            "SELECT {} FROM deliveries d JOIN messages m ON m.id = d.message_id
             WHERE d.state IN ('queued', 'retrying', 'failed')
               AND (CAST($2 AS TEXT) IS NULL OR m.store = $2)
             ORDER BY d.next_attempt_at LIMIT $1",
            schema::QUEUE_ENTRY
        );
        let stmt = Stmt::new(sql).int(i64::from(limit)).opt_text(store);
        let found = self.reader().await?.fetch_all(stmt).await?;
        found.iter().map(rows::queue_entry).collect()
    }

    async fn queue_stats(&self) -> Result<(u64, Option<DateTime<Utc>>)> {
        let stmt = Stmt::new(
            "SELECT COUNT(*) AS depth, MIN(created_at) AS oldest
             FROM deliveries WHERE state IN ('queued', 'retrying')",
        );
        let row = self.reader().await?.fetch_one(stmt).await?;
        Ok((
            row.int("depth")? as u64,
            row.opt_int("oldest")?.map(rows::from_ms).transpose()?,
        ))
    }

    async fn queue_retry(&self, delivery_id: &str, now: DateTime<Utc>) -> Result<bool> {
        let stmt = Stmt::new(
            "UPDATE deliveries SET state = CASE state WHEN 'failed' THEN 'retrying' ELSE state END,
                 next_attempt_at = $1, updated_at = $1, held_at = NULL
             WHERE id = $2 AND state <> 'delivered'
               AND rcpt_email NOT LIKE 'erased:%'",
        )
        .int(to_ms(now))
        .text(delivery_id);
        Ok(self.writer().await?.execute(stmt).await? > 0)
    }

    async fn purge_batch(
        &self,
        aliases_before: DateTime<Utc>,
        messages_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<PurgeCounts> {
        let limit = i64::from(limit);
        let mut writer = self.writer().await?;
        let mut tx = B::begin_write(&mut writer).await?;
        let statements = [
            (PURGE_ALIASES, aliases_before),
            (PURGE_MESSAGES, messages_before),
            (PURGE_REFUSALS, messages_before),
            (PURGE_WEBHOOK_EVENTS, messages_before),
        ];
        let mut deleted = [0; 4];
        for (count, (sql, before)) in deleted.iter_mut().zip(statements) {
            *count = delete_batch(&mut *tx, sql, before, limit).await?;
        }
        let [aliases, messages, entries, webhook_events] = deleted;
        let erased_messages = tx
            .execute(Stmt::new(FINISH_ERASURES).bytes(Vec::new()).int(limit))
            .await?;
        B::commit(tx).await?;
        Ok(PurgeCounts {
            aliases,
            messages,
            entries,
            webhook_events,
            erased_messages,
            held_orders: 0,
        })
    }
}
