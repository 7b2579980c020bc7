//! Reading an order's timeline: which store an order id means, and pages
//! of entries by key.

use super::{Result, Scope, ServiceError, Services};
use crate::storage::{TimelineEntry, TimelinePage, PAGE_MAX};

/// Entries per page when the caller does not say.
pub const PAGE_DEFAULT: u32 = 100;

/// The page size a caller asked for (or the default), if it is 1 to `PAGE_MAX`.
pub fn page_limit(asked: Option<usize>) -> Result<u32> {
    match asked {
        None => Ok(PAGE_DEFAULT),
        Some(n) => u32::try_from(n)
            .ok()
            .filter(|n| (1..=PAGE_MAX).contains(n))
            .ok_or_else(|| ServiceError::BadRequest(format!("limit must be 1 to {PAGE_MAX}"))),
    }
}

impl Services {
    /// The store an order belongs to: the one named (if the caller may act
    /// for it), the caller's own, or the only store with that order id.
    pub async fn order_store(
        &self,
        scope: &Scope,
        named: Option<&str>,
        order: &str,
    ) -> Result<String> {
        if let Some(store) = named {
            scope.allow(store)?;
            return Ok(store.to_string());
        }
        if let Some(mine) = &scope.store {
            return Ok(mine.clone());
        }
        let mut stores = self.storage.stores_with_order(order).await?;
        match stores.len() {
            0 => Err(ServiceError::NoSuchOrder(order.to_string())),
            1 => Ok(stores.remove(0)),
            _ => Err(ServiceError::AmbiguousOrder {
                order: order.to_string(),
                stores,
            }),
        }
    }

    /// `limit` entries (1 to `PAGE_MAX`) after the entry `after`, oldest
    /// first, with the cursor of the next page.
    pub async fn timeline_page(
        &self,
        store: &str,
        order: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<TimelinePage> {
        page_limit(Some(limit as usize))?;
        self.storage
            .timeline_page(store, order, after, limit)
            .await?
            .ok_or_else(|| ServiceError::UnknownCursor(after.unwrap_or_default().to_string()))
    }

    /// Every entry after `after` (or from the first), oldest first.
    pub async fn timeline_rest(
        &self,
        store: &str,
        order: &str,
        after: Option<&str>,
    ) -> Result<Vec<TimelineEntry>> {
        self.storage
            .timeline_after(store, order, after)
            .await?
            .ok_or_else(|| ServiceError::UnknownCursor(after.unwrap_or_default().to_string()))
    }
}
