//! Legal hold of an order: a dispute or a court order may require keeping
//! an order's mail past retention. A held order is skipped by the purge
//! (and by erasure) until the hold is lifted.

use chrono::{DateTime, Utc};

use super::{Result, Scope, ServiceError, Services};
use crate::storage::Hold;

impl Services {
    /// Put the store's order on hold for `reason` (1 to 500 characters);
    /// an order already held keeps its first hold. The hold as it stands.
    pub async fn hold_order(
        &self,
        scope: &Scope,
        (store, order): (&str, &str),
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Hold> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(ServiceError::Invalid(
                "a hold needs a reason of 1 to 500 characters".into(),
            ));
        }
        self.known_order(scope, store, order).await?;
        let hold = self
            .storage
            .hold(&Hold {
                store: store.to_string(),
                order: order.to_string(),
                held_at: now,
                reason: reason.to_string(),
            })
            .await?;
        tracing::info!(store, order, "order on legal hold");
        Ok(hold)
    }

    /// Lift the store's order's hold; whether it had one.
    pub async fn release_order(&self, scope: &Scope, (store, order): (&str, &str)) -> Result<bool> {
        self.known_order(scope, store, order).await?;
        let released = self.storage.release(store, order).await?;
        if released {
            tracing::info!(store, order, "legal hold lifted");
        }
        Ok(released)
    }

    /// The store's order's hold, if any.
    pub async fn order_hold(
        &self,
        scope: &Scope,
        (store, order): (&str, &str),
    ) -> Result<Option<Hold>> {
        self.known_order(scope, store, order).await?;
        Ok(self.storage.find_hold(store, order).await?)
    }

    /// `NotFound` unless the store (which the caller may act for) has the order.
    pub(super) async fn known_order(&self, scope: &Scope, store: &str, order: &str) -> Result<()> {
        scope.allow(store)?;
        if self
            .storage
            .order_participants(store, order)
            .await?
            .is_empty()
        {
            return Err(ServiceError::NotFound(format!(
                "no order `{order}` in store `{store}`"
            )));
        }
        Ok(())
    }
}
