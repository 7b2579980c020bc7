//! Webhooks: a store that sets a webhook URL receives a signed JSON event for
//! every change to its orders' timelines, so order systems need not poll.
//!
//! Events are written to an outbox in the same transaction as the change
//! (see `storage::outbox`); the dispatcher leases due events, sends them and
//! retries with backoff. Delivery is at least once: receivers deduplicate by
//! event id. Each event carries the timeline entry as it is when sent.

pub mod address;
mod dispatcher;
pub mod signature;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::storage::{rfc3339, TimelineEntry, WebhookEventKind};

pub use dispatcher::WebhookDispatcher;

/// The JSON body of a webhook request.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookEvent {
    /// Unique per event; the same on every retry of it.
    pub id: String,
    /// What the event announces.
    #[serde(rename = "type")]
    pub kind: WebhookEventKind,
    /// When the change happened.
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    /// The store.
    pub store: String,
    /// The order.
    pub order: String,
    /// The timeline entry concerned, as `GET /v1/orders/{order}/timeline` shows it.
    pub entry: TimelineEntry,
}

/// A new signing secret: 32 random bytes.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    format!("whsec_{}", hex::encode(bytes))
}
