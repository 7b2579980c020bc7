//! This node's heartbeat on a shared database (see `storage::nodes`):
//! every `delivery.heartbeat` it writes that it is alive for three more,
//! so the other nodes take over its claims soon after it dies, and when
//! it stops cleanly (its leases given back) it says so.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use crate::storage::Storage;

/// Beat every `every` until `stop` turns true, then remove this node.
pub async fn beat(
    storage: Arc<dyn Storage>,
    node: String,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let alive_for = chrono::Duration::from_std(every * 3).unwrap_or(chrono::Duration::MAX);
    let mut failing = false;
    loop {
        let now = Utc::now();
        match storage.heartbeat(&node, now, now + alive_for).await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("heartbeat written again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot write the heartbeat; other nodes take over this node's claims if it stays silent");
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    if let Err(e) = storage.node_stopped(&node).await {
        tracing::debug!(error = %e, "could not remove this node from the heartbeat table");
    }
}
