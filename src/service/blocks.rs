//! Senders blocked for an order, named by alias or by address. The rule of
//! what a block hits is `policy::blocks`; here the caller's store is
//! checked and the order's store found.

use chrono::{DateTime, Utc};

use super::{Result, Scope, ServiceError, Services};
use crate::alias::Participant;
use crate::policy::blocks::{self, BlockChange, BlockError};

impl From<BlockError> for ServiceError {
    fn from(e: BlockError) -> Self {
        match e {
            BlockError::NoSuchOrder | BlockError::NotInOrder => Self::NotFound(e.to_string()),
            BlockError::BadSender => Self::Invalid(e.to_string()),
            BlockError::Storage(e) => Self::Storage(e),
        }
    }
}

impl Services {
    /// The order's blocked senders, with the store the order was found in.
    pub async fn blocked_senders(
        &self,
        scope: &Scope,
        store: Option<&str>,
        order: &str,
    ) -> Result<(String, Vec<Participant>)> {
        let store = self.order_store(scope, store, order).await?;
        let senders = blocks::blocked(self.storage.as_ref(), &store, order).await?;
        Ok((store, senders))
    }

    /// Block `sender` (an alias or an address) for the store's order, or
    /// lift its block; returns the participants the change hit.
    pub async fn change_block(
        &self,
        scope: &Scope,
        (store, order): (&str, &str),
        sender: &str,
        change: BlockChange,
        now: DateTime<Utc>,
    ) -> Result<Vec<Participant>> {
        scope.allow(store)?;
        let key = (store, order);
        let storage = self.storage.as_ref();
        Ok(blocks::change(storage, &self.aliaser, key, sender, change, now).await?)
    }
}
