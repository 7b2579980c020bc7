//! Deleting what is past retention, a small transaction at a time, so the
//! relay's own writes are never held up for long.

use std::time::Duration;

use chrono::Utc;

use super::{PurgeCounts, Result, Storage};
use crate::config::StorageSettings;

/// Pause between batches: lets the committer in between purge transactions.
const BETWEEN_BATCHES: Duration = Duration::from_millis(20);

/// Purge until nothing is left to purge; returns the totals. `shrink`:
/// give the freed space back to the file system (see `Maintenance`).
pub async fn purge(
    storage: &dyn Storage,
    settings: &StorageSettings,
    shrink: bool,
) -> Result<PurgeCounts> {
    let now = Utc::now();
    let messages_before = now - settings.retention;
    let aliases_before = now - settings.expired_alias_retention;
    let mut total = PurgeCounts::default();
    // Stores that keep less than the relay: their own cutoff first.
    for (store, retention) in storage.store_retentions().await? {
        if retention >= settings.retention {
            continue;
        }
        loop {
            let batch = storage
                .purge_store_batch(&store, now - retention, settings.purge_batch.max(1))
                .await?;
            if batch.is_empty() {
                break;
            }
            total.messages += batch.messages;
            total.entries += batch.entries;
            tokio::time::sleep(BETWEEN_BATCHES).await;
        }
    }
    loop {
        let batch = storage
            .purge_batch(aliases_before, messages_before, settings.purge_batch.max(1))
            .await?;
        if batch.is_empty() {
            storage.compact(shrink).await?;
            total.held_orders = storage.held_orders().await?;
            return Ok(total);
        }
        total.aliases += batch.aliases;
        total.messages += batch.messages;
        total.entries += batch.entries;
        total.webhook_events += batch.webhook_events;
        total.erased_messages += batch.erased_messages;
        tokio::time::sleep(BETWEEN_BATCHES).await;
    }
}
