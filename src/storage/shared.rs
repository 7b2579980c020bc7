//! The storage trait implemented once, as SQL both backends accept: SQLite
//! understands PostgreSQL's `$n` placeholders, and `CAST(… AS TEXT)`. Each
//! backend instantiates it with its pool's database and the few pieces
//! that differ (migrations, claiming, `MAX` vs `GREATEST`).

/// `impl Storage for $storage`, where
/// `$storage` has a `pool: sqlx::Pool<$db>`.
macro_rules! impl_storage {
    (
        $storage:ident, $db:ty,
        migrator: $migrator:expr,
        single_node: $single_node:expr,
        claim_lock: $lock:literal,
        greatest: $greatest:literal $(,)?
    ) => {
        const _: () = {
            use chrono::{DateTime, Utc};
            use sqlx::Row;

            use $crate::alias::{MaskMode, Participant};
            use $crate::storage::rows::{self, json, to_ms, Columns, JOB_COLUMNS, PARTICIPANT_COLUMNS};
            use $crate::storage::{
                DeliveryJob, OrderAtRcpt, OrderExpiry, PurgeCounts, QueueEntry, RefusedEntry, Result, Storage,
                StorageError,
                StoreSummary, StoredMessage,
            };

            impl $storage {
                /// A refused-at-the-door timeline entry, announced to the
                /// store's webhook if it has one.
                pub(crate) async fn insert_refusal(
                    conn: &mut <$db as sqlx::Database>::Connection,
                    r: &RefusedEntry,
                ) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO timeline_entries (id, store, order_id, at, message_id, from_alias,
                             to_aliases, subject, first_words, attachment_names, refused, reason)
                         VALUES ($1, $2, $3, $4, NULL, $5, $6, $9, '', '[]', $7, $8)",
                    )
                    .bind(&r.id)
                    .bind(&r.store)
                    .bind(&r.order)
                    .bind(to_ms(r.at))
                    .bind(r.from.as_ref().map(json))
                    .bind(json(&r.to))
                    .bind(&r.reply)
                    .bind(&r.reason)
                    .bind(&r.subject)
                    .execute(&mut *conn)
                    .await?;
                    Self::insert_webhook_event(
                        &mut *conn,
                        &r.store,
                        &r.order,
                        &r.id,
                        $crate::storage::WebhookEventKind::MessageRefused,
                        r.at,
                    )
                    .await
                }
            }

            impl $storage {
                /// Give back leases on `table` (deliveries or webhook events):
                /// `node`'s, or every node's.
                pub(crate) async fn release_leases_in(&self, table: &'static str, node: Option<&str>) -> Result<u64> {
                    let sql = format!(
                        "UPDATE {table} SET lease_owner = NULL, lease_until = NULL
                         WHERE lease_owner IS NOT NULL AND (CAST($1 AS TEXT) IS NULL OR lease_owner = $1)"
                    );
                    let done = sqlx::query(&sql).bind(node).execute(&mut *self.writer().await?).await?;
                    Ok(done.rows_affected())
                }

                /// One purge statement (`$1` the cutoff, `$2` the limit); rows deleted.
                async fn delete_batch(
                    conn: &mut <$db as sqlx::Database>::Connection,
                    sql: &str,
                    before: DateTime<Utc>,
                    limit: i64,
                ) -> Result<u64> {
                    let done = sqlx::query(sql)
                        .bind(to_ms(before))
                        .bind(limit)
                        .execute(&mut *conn)
                        .await?;
                    Ok(done.rows_affected())
                }
            }

            #[async_trait::async_trait]
            impl Storage for $storage {
                async fn migrate(&self) -> Result<()> {
                    let mut conn = self.writer().await?;
                    // `run` takes an `Acquire`, which async-trait's future
                    // cannot name for a borrowed connection; sqlx offers
                    // `run_direct` for just that.
                    $migrator
                        .run_direct(&mut *conn)
                        .await
                        .map_err(|e| StorageError::Migration(e.to_string()))
                }

                fn single_node(&self) -> bool {
                    $single_node
                }

                async fn ping(&self) -> Result<()> {
                    sqlx::query("SELECT 1").execute(&mut *self.reader().await?).await?;
                    Ok(())
                }

                async fn message(&self, message_id: &str) -> Result<Option<StoredMessage>> {
                    let row = sqlx::query(
                        "SELECT store, order_id, return_path, received_at, content FROM messages WHERE id = $1",
                    )
                        .bind(message_id)
                        .fetch_optional(&mut *self.reader().await?)
                        .await?;
                    row.map(|r| {
                        Ok(StoredMessage {
                            store: r.text("store")?,
                            order: r.text("order_id")?,
                            return_path: r.text("return_path")?,
                            received_at: rows::time(&r, "received_at")?,
                            content: r.try_get("content")?,
                        })
                    })
                    .transpose()
                }

                async fn store_mode(&self, store: &str) -> Result<MaskMode> {
                    let row = sqlx::query("SELECT mask_mode FROM stores WHERE store = $1")
                        .bind(store)
                        .fetch_optional(&mut *self.reader().await?)
                        .await?;
                    row.map_or(Ok(MaskMode::Hard), |r| rows::mask_mode(&r, "mask_mode"))
                }

                async fn set_store_mode(&self, store: &str, mode: MaskMode) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO stores (store, mask_mode, updated_at) VALUES ($1, $2, $3)
                         ON CONFLICT (store) DO UPDATE SET mask_mode = excluded.mask_mode, updated_at = excluded.updated_at",
                    )
                    .bind(store)
                    .bind(mode.as_str())
                    .bind(to_ms(Utc::now()))
                    .execute(&mut *self.writer().await?)
                    .await?;
                    Ok(())
                }

                async fn store_summary(&self, store: &str) -> Result<StoreSummary> {
                    let row = sqlx::query(
                        "SELECT (SELECT mask_mode FROM stores WHERE store = $1) AS mask_mode,
                                (SELECT webhook_url FROM stores WHERE store = $1) AS webhook_url,
                                COUNT(*) AS aliases, COUNT(DISTINCT order_id) AS orders
                         FROM participants WHERE store = $1",
                    )
                    .bind(store)
                    .fetch_one(&mut *self.reader().await?)
                    .await?;
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
                    self.ensure_participants_in_one_transaction(ps).await
                }

                async fn find_alias(&self, alias: &str) -> Result<Option<Participant>> {
                    let sql = format!("SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE alias_key = $1");
                    let row = sqlx::query(&sql)
                        .bind(alias.to_lowercase())
                        .fetch_optional(&mut *self.reader().await?)
                        .await?;
                    row.as_ref().map(rows::participant).transpose()
                }

                async fn find_alias_with_order(&self, alias: &str) -> Result<Option<(Participant, OrderAtRcpt)>> {
                    // The store's policy rides along on the first row.
                    let sql = format!(
                        "SELECT {PARTICIPANT_COLUMNS},
                                (SELECT s.policy FROM stores s WHERE s.store = p.store) AS store_policy
                         FROM participants p
                         WHERE (store, order_id) = (SELECT store, order_id FROM participants WHERE alias_key = $1)
                         ORDER BY created_at"
                    );
                    let key = alias.to_lowercase();
                    let found = sqlx::query(&sql).bind(&key).fetch_all(&mut *self.reader().await?).await?;
                    let participants = found.iter().map(rows::participant).collect::<Result<Vec<_>>>()?;
                    let policy = match found.first().map(|r| r.opt_text("store_policy")).transpose()?.flatten() {
                        Some(json) => serde_json::from_str(&json)
                            .map_err(|e| StorageError::Corrupt(format!("store policy: {e}")))?,
                        None => Default::default(),
                    };
                    Ok(participants
                        .iter()
                        .find(|p| p.key() == key)
                        .cloned()
                        .map(|p| (p, OrderAtRcpt { participants, policy })))
                }

                async fn disable_alias(&self, alias: &str, now: DateTime<Utc>) -> Result<bool> {
                    let done = sqlx::query(
                        "UPDATE participants SET disabled_at = COALESCE(disabled_at, $1) WHERE alias_key = $2",
                    )
                    .bind(to_ms(now))
                    .bind(alias.to_lowercase())
                    .execute(&mut *self.writer().await?)
                    .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn order_participants(&self, store: &str, order: &str) -> Result<Vec<Participant>> {
                    let sql = format!(
                        "SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE store = $1 AND order_id = $2 ORDER BY created_at"
                    );
                    let found = sqlx::query(&sql)
                        .bind(store)
                        .bind(order)
                        .fetch_all(&mut *self.reader().await?)
                        .await?;
                    found.iter().map(rows::participant).collect()
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
                    let done = sqlx::query(sql)
                        .bind(to_ms(at))
                        .bind(store)
                        .bind(order)
                        .execute(&mut *self.writer().await?)
                        .await?;
                    Ok(done.rows_affected())
                }

                async fn stores_with_order(&self, order: &str) -> Result<Vec<String>> {
                    let found = sqlx::query(
                        "SELECT DISTINCT store FROM participants WHERE order_id = $1 ORDER BY store",
                    )
                    .bind(order)
                    .fetch_all(&mut *self.reader().await?)
                    .await?;
                    found.iter().map(|r| r.text("store")).collect()
                }

                async fn claim_due(
                    &self,
                    node: &str,
                    now: DateTime<Utc>,
                    lease_until: DateTime<Utc>,
                    limit: u32,
                ) -> Result<Vec<DeliveryJob>> {
                    // `$lock`: FOR UPDATE SKIP LOCKED where several nodes claim at once.
                    let sql = format!(
                        "UPDATE deliveries SET lease_owner = $1, lease_until = $2
                         WHERE id IN (
                             SELECT id FROM deliveries
                             WHERE state IN ('queued', 'retrying') AND next_attempt_at <= $3 AND {free}
                             ORDER BY next_attempt_at LIMIT $4 {lock})
                         RETURNING {JOB_COLUMNS}",
                        lock = $lock,
                        free = $crate::storage::nodes::LEASE_FREE,
                    );
                    let claimed = sqlx::query(&sql)
                        .bind(node)
                        .bind(to_ms(lease_until))
                        .bind(to_ms(now))
                        .bind(i64::from(limit))
                        .fetch_all(&mut *self.writer().await?)
                        .await?;
                    claimed.iter().map(rows::delivery_job).collect()
                }

                async fn delivery(&self, delivery_id: &str) -> Result<Option<DeliveryJob>> {
                    let sql = format!("SELECT {JOB_COLUMNS} FROM deliveries WHERE id = $1");
                    let row = sqlx::query(&sql).bind(delivery_id).fetch_optional(&mut *self.reader().await?).await?;
                    row.as_ref().map(rows::delivery_job).transpose()
                }

                async fn message_content(&self, message_id: &str) -> Result<Option<Vec<u8>>> {
                    Ok(
                        sqlx::query_scalar("SELECT content FROM messages WHERE id = $1")
                            .bind(message_id)
                            .fetch_optional(&mut *self.reader().await?)
                            .await?,
                    )
                }

                async fn release_leases(&self, node: Option<&str>) -> Result<u64> {
                    self.release_leases_in("deliveries", node).await
                }

                async fn next_due(&self) -> Result<Option<DateTime<Utc>>> {
                    let due: Option<i64> = sqlx::query_scalar(
                        concat!(
                            "SELECT MIN(", $greatest, "(next_attempt_at, COALESCE(lease_until, 0)))
                             FROM deliveries WHERE state IN ('queued', 'retrying')"
                        ),
                    )
                    .fetch_one(&mut *self.reader().await?)
                    .await?;
                    due.map(rows::from_ms).transpose()
                }

                async fn queue_list(&self, store: Option<&str>, limit: u32) -> Result<Vec<QueueEntry>> {
                let found = sqlx::query(
                    "SELECT d.id, d.message_id, m.store, m.order_id, d.rcpt_alias, d.state, d.attempts,
                            d.next_attempt_at, d.last_reply, d.lease_owner
                     FROM deliveries d JOIN messages m ON m.id = d.message_id
                     WHERE d.state IN ('queued', 'retrying', 'failed')
                       AND (CAST($2 AS TEXT) IS NULL OR m.store = $2)
                     ORDER BY d.next_attempt_at LIMIT $1",
                )
                .bind(i64::from(limit))
                .bind(store)
                .fetch_all(&mut *self.reader().await?)
                .await?;
                found.iter().map(rows::queue_entry).collect()
                }

                async fn queue_stats(&self) -> Result<(u64, Option<DateTime<Utc>>)> {
                    let row = sqlx::query(
                        "SELECT COUNT(*) AS depth, MIN(created_at) AS oldest
                         FROM deliveries WHERE state IN ('queued', 'retrying')",
                    )
                    .fetch_one(&mut *self.reader().await?)
                    .await?;
                    Ok((
                        row.int("depth")? as u64,
                        row.opt_int("oldest")?.map(rows::from_ms).transpose()?,
                    ))
                }

                async fn queue_retry(&self, delivery_id: &str, now: DateTime<Utc>) -> Result<bool> {
                    let done = sqlx::query(
                        "UPDATE deliveries SET state = CASE state WHEN 'failed' THEN 'retrying' ELSE state END,
                             next_attempt_at = $1, updated_at = $1
                         WHERE id = $2 AND state <> 'delivered'",
                    )
                    .bind(to_ms(now))
                    .bind(delivery_id)
                    .execute(&mut *self.writer().await?)
                    .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn purge_batch(
                    &self,
                    aliases_before: DateTime<Utc>,
                    messages_before: DateTime<Utc>,
                    limit: u32,
                ) -> Result<PurgeCounts> {
                    // Deletes cascade from messages to deliveries, attempts and timeline entries.
                let limit = i64::from(limit);
                let mut writer = self.writer().await?;
                    let mut tx = Self::begin_write(&mut writer).await?;
                let aliases = Self::delete_batch(
                    &mut tx,
                    "DELETE FROM participants WHERE alias_key IN
                         (SELECT alias_key FROM participants WHERE expires_at < $1 LIMIT $2)",
                    aliases_before,
                    limit,
                )
                .await?;
                let messages = Self::delete_batch(
                    &mut tx,
                    "DELETE FROM messages WHERE id IN
                         (SELECT id FROM messages m WHERE received_at < $1
                            AND NOT EXISTS (SELECT 1 FROM deliveries d
                                            WHERE d.message_id = m.id AND d.state IN ('queued', 'retrying'))
                          LIMIT $2)",
                    messages_before,
                    limit,
                )
                .await?;
                let entries = Self::delete_batch(
                    &mut tx,
                    "DELETE FROM timeline_entries WHERE id IN
                         (SELECT id FROM timeline_entries WHERE message_id IS NULL AND at < $1 LIMIT $2)",
                    messages_before,
                    limit,
                )
                .await?;
                let webhook_events = Self::delete_batch(
                    &mut tx,
                    "DELETE FROM webhook_events WHERE id IN
                         (SELECT id FROM webhook_events WHERE created_at < $1 LIMIT $2)",
                    messages_before,
                    limit,
                )
                .await?;
                tx.commit().await?;
                Ok(PurgeCounts {
                    aliases,
                    messages,
                    entries,
                    webhook_events,
                })
                }
            }
        };
    };
}

pub(crate) use impl_storage;
