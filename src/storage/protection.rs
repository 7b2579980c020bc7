//! What the relay keeps about people, and their rights over it: finding
//! a person's rows by address, erasing them (`erasure`), legal holds
//! (`holds`), the audit of reveals (`audit`) and the keys values are sealed
//! under (`encryption`, `rotation`). One trait, so the rest of storage
//! need not know about them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::sql::Backend;
use super::{rotation, Erasure, Hold, Participant, Result, Reveal};

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
}
