//! What the relay keeps about people, and their rights over it: finding
//! a person's rows by address, erasing them (`erasure`), legal holds
//! (`holds`), the audit of reveals (`audit`) and the keys values are sealed
//! under (`encryption`, `rotation`), and each store's own retention. One trait, so the rest of storage
//! need not know about them.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::rows::{to_ms, Columns};
use super::sql::{Backend, SqlConn, Stmt};
use super::{rotation, Erasure, Hold, Participant, PurgeCounts, Result, Reveal};

/// A data subject's rights, legal holds, reveals and key rotation.
#[async_trait]
pub trait Protection: Send + Sync {
    /// Every participant with the real address `email` (any case), in
    /// `store` when given, oldest first.
    async fn participants_with(&self, email: &str, store: Option<&str>)
        -> Result<Vec<Participant>>;

    /// Erase the person with address `email` (in `store` when given) from
    /// every order not on legal hold (see `erasure`); held orders are
    /// named in the result. Idempotent. Then the freed space is cleaned.
    async fn erase_subject(
        &self,
        email: &str,
        store: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Erasure>;

    /// The id of the key new values are sealed under (`None`: in clear).
    fn encryption_key_id(&self) -> Option<String>;

    /// One batch of `keys rotate` (see `rotation`).
    async fn reseal_batch(
        &self,
        table: rotation::SealedTable,
        after: &str,
        limit: u32,
    ) -> Result<rotation::ResealBatch>;

    /// Put an order on legal hold (as it was, when already held).
    async fn hold(&self, hold: &Hold) -> Result<Hold>;

    /// Lift an order's hold; whether it had one.
    async fn release(&self, store: &str, order: &str) -> Result<bool>;

    /// The order's hold, if any.
    async fn find_hold(&self, store: &str, order: &str) -> Result<Option<Hold>>;

    /// How many orders are on hold.
    async fn held_orders(&self) -> Result<u64>;

    /// Record that a participant's real address is being shown.
    async fn record_reveal(&self, reveal: &Reveal) -> Result<()>;

    /// The latest reveals, newest first.
    async fn reveals(&self, limit: u32) -> Result<Vec<Reveal>>;

    /// The stores that keep their mail for less than `storage.retention`,
    /// and for how long.
    async fn store_retentions(&self) -> Result<Vec<(String, Duration)>>;

    /// One batch of `store`'s own purge: up to `limit` of its messages
    /// received before `before` whose deliveries are all final (with their
    /// timeline entries), and up to `limit` of its refusals from before
    /// then; held orders are kept.
    async fn purge_store_batch(
        &self,
        store: &str,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<PurgeCounts>;
}

#[async_trait]
impl<B: Backend> Protection for B {
    async fn participants_with(
        &self,
        email: &str,
        store: Option<&str>,
    ) -> Result<Vec<Participant>> {
        super::subjects::participants_with(&mut *self.reader().await?, self.keyring(), email, store)
            .await
    }

    async fn erase_subject(
        &self,
        email: &str,
        store: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<super::Erasure> {
        let orders =
            super::erasure::orders_with(&mut *self.reader().await?, self.keyring(), email, store)
                .await?;
        if orders.is_empty() {
            return Ok(super::Erasure::default());
        }
        let erasure = {
            let mut writer = self.writer().await?;
            let mut tx = B::begin_write(&mut writer).await?;
            let locks: Vec<(&str, &str)> = orders
                .iter()
                .map(|(s, o)| (s.as_str(), o.as_str()))
                .collect();
            B::lock_orders(&mut tx, &locks).await?;
            let erasure =
                super::erasure::erase(&mut *tx, self.keyring(), email, store, now).await?;
            B::commit(tx).await?;
            erasure
        };
        // SQLite: the log goes, so the old pages with it; PostgreSQL:
        // the dead rows are vacuumed.
        self.compact(false).await?;
        Ok(erasure)
    }

    fn encryption_key_id(&self) -> Option<String> {
        self.keyring().current_id().map(str::to_string)
    }

    async fn reseal_batch(
        &self,
        table: super::rotation::SealedTable,
        after: &str,
        limit: u32,
    ) -> Result<super::rotation::ResealBatch> {
        super::rotation::reseal_batch(self, table, after, limit).await
    }

    async fn hold(&self, hold: &super::Hold) -> Result<super::Hold> {
        super::holds::hold(&mut *self.writer().await?, hold).await
    }

    async fn release(&self, store: &str, order: &str) -> Result<bool> {
        super::holds::release(&mut *self.writer().await?, store, order).await
    }

    async fn find_hold(&self, store: &str, order: &str) -> Result<Option<super::Hold>> {
        super::holds::find(&mut *self.reader().await?, store, order).await
    }

    async fn held_orders(&self) -> Result<u64> {
        super::holds::count(&mut *self.reader().await?).await
    }

    async fn record_reveal(&self, reveal: &super::Reveal) -> Result<()> {
        super::audit::insert(&mut *self.writer().await?, reveal).await
    }

    async fn reveals(&self, limit: u32) -> Result<Vec<super::Reveal>> {
        super::audit::latest(&mut *self.reader().await?, limit).await
    }

    async fn store_retentions(&self) -> Result<Vec<(String, Duration)>> {
        let stmt = Stmt::new(
            "SELECT store, retention_ms FROM stores WHERE retention_ms IS NOT NULL ORDER BY store",
        );
        let rows = self.reader().await?.fetch_all(stmt).await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.text("store")?,
                    Duration::from_millis(r.int("retention_ms")?.max(0) as u64),
                ))
            })
            .collect()
    }

    async fn purge_store_batch(
        &self,
        store: &str,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<PurgeCounts> {
        let mut writer = self.writer().await?;
        let mut tx = B::begin_write(&mut writer).await?;
        let mut counts = [0; 2];
        for (count, sql) in counts
            .iter_mut()
            .zip([PURGE_STORE_MESSAGES, PURGE_STORE_REFUSALS])
        {
            let stmt = Stmt::new(sql)
                .int(to_ms(before))
                .int(i64::from(limit))
                .text(store);
            *count = tx.execute(stmt).await?;
        }
        B::commit(tx).await?;
        Ok(PurgeCounts {
            messages: counts[0],
            entries: counts[1],
            ..PurgeCounts::default()
        })
    }
}

/// One store's messages past its retention whose deliveries are all final.
const PURGE_STORE_MESSAGES: &str = "DELETE FROM messages WHERE id IN
    (SELECT id FROM messages m WHERE m.store = $3 AND received_at < $1
       AND NOT EXISTS (SELECT 1 FROM deliveries d
                       WHERE d.message_id = m.id AND d.state IN ('queued', 'retrying'))
       AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.store = m.store AND h.order_id = m.order_id)
     LIMIT $2)";
/// One store's refusals and events past its retention.
const PURGE_STORE_REFUSALS: &str = "DELETE FROM timeline_entries WHERE id IN
    (SELECT id FROM timeline_entries t WHERE t.store = $3 AND message_id IS NULL AND at < $1
       AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.store = t.store AND h.order_id = t.order_id)
     LIMIT $2)";
