//! The webhook outbox. A store may name a webhook URL; every timeline
//! change of its orders (a message accepted or refused, a delivery changing
//! state) then leaves an event row, written in the same transaction as the
//! change, which the webhook dispatcher leases and sends.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::queries::{claim, Claim};
use super::rows::{self, to_ms, Columns};
use super::settings::{StoreSettings, WebhookTarget};
use super::sql::{Backend, SqlConn, Stmt};
use super::{schema, Result, StorageError};

/// What a webhook event announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum WebhookEventKind {
    /// A message was accepted and is on the timeline.
    #[serde(rename = "message.accepted")]
    MessageAccepted,
    /// Mail was refused at the door (e.g. to an ended alias).
    #[serde(rename = "message.refused")]
    MessageRefused,
    /// One of the entry's deliveries changed state.
    #[serde(rename = "delivery.updated")]
    DeliveryUpdated,
    /// A participant's mailbox refused mail as unknown or disabled often
    /// enough: mail to its alias is refused until its address changes.
    #[serde(rename = "participant.undeliverable")]
    ParticipantUndeliverable,
}

impl WebhookEventKind {
    /// Every kind of event.
    pub const ALL: [Self; 4] = [
        Self::MessageAccepted,
        Self::MessageRefused,
        Self::DeliveryUpdated,
        Self::ParticipantUndeliverable,
    ];

    /// The event's `type`, as stored and as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEventKind::MessageAccepted => "message.accepted",
            WebhookEventKind::MessageRefused => "message.refused",
            WebhookEventKind::DeliveryUpdated => "delivery.updated",
            WebhookEventKind::ParticipantUndeliverable => "participant.undeliverable",
        }
    }

    /// The kind named `s`, if any.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "message.accepted" => WebhookEventKind::MessageAccepted,
            "message.refused" => WebhookEventKind::MessageRefused,
            "delivery.updated" => WebhookEventKind::DeliveryUpdated,
            "participant.undeliverable" => WebhookEventKind::ParticipantUndeliverable,
            _ => return None,
        })
    }
}

/// A leased event, with where it goes (`None` when the store's webhook was
/// removed after the event was written).
#[derive(Debug, Clone)]
pub struct WebhookJob {
    /// The event's id (the same on every retry).
    pub id: String,
    /// The store.
    pub store: String,
    /// The order.
    pub order: String,
    /// The timeline entry concerned.
    pub entry_id: String,
    /// What it announces.
    pub kind: WebhookEventKind,
    /// Sends tried so far.
    pub attempts: u32,
    /// When the change happened.
    pub created_at: DateTime<Utc>,
    /// Where it goes.
    pub target: Option<WebhookTarget>,
}

/// Where an event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookState {
    /// Not sent yet.
    Pending,
    /// Sent (a 2xx answer).
    Sent,
    /// Given up.
    Failed,
}

impl WebhookState {
    /// The state's word, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookState::Pending => "pending",
            WebhookState::Sent => "sent",
            WebhookState::Failed => "failed",
        }
    }
}

/// The outcome of one send. `Pending` with `next_attempt_at` is a retry.
#[derive(Debug, Clone)]
pub struct WebhookOutcome {
    /// When the send was tried.
    pub at: DateTime<Utc>,
    /// Where the event now stands.
    pub state: WebhookState,
    /// "HTTP 204", "HTTP 500", "timed out", … (never the URL).
    pub status: String,
    /// When to try again, for a retry.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// The webhook outbox: events written with each timeline change, leased and
/// sent by the dispatcher of any node.
#[async_trait]
pub trait WebhookOutbox: Send + Sync {
    /// Lease up to `limit` due events to `node`.
    async fn claim_webhook_events(
        &self,
        node: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<WebhookJob>>;
    /// Write a send's outcome if `node` still holds the event's lease.
    async fn record_webhook_outcome(
        &self,
        node: &str,
        event_id: &str,
        outcome: &WebhookOutcome,
    ) -> Result<bool>;
    /// Give back this node's leases (`Some`) or every lease (`None`).
    async fn release_webhook_leases(&self, node: Option<&str>) -> Result<u64>;
    /// Events not yet sent, and when the oldest of them was written.
    async fn webhook_backlog(&self) -> Result<(u64, Option<DateTime<Utc>>)>;
}

/// The event announcing a change to timeline entry `entry_id`, written
/// only if the store has a webhook. Runs inside the change's transaction.
pub(crate) async fn insert_webhook_event(
    conn: &mut impl SqlConn,
    store: &str,
    order: &str,
    entry_id: &str,
    kind: WebhookEventKind,
    at: DateTime<Utc>,
) -> Result<()> {
    let stmt = Stmt::new(
        "INSERT INTO webhook_events (id, store, order_id, entry_id, kind, created_at, state,
             next_attempt_at, updated_at)
         SELECT $1, $2, $3, $4, $5, $6, 'pending', $6, $6
         FROM stores WHERE store = $2 AND webhook_url IS NOT NULL",
    )
    .text(ulid::Ulid::new().to_string())
    .text(store)
    .text(order)
    .text(entry_id)
    .text(kind.as_str())
    .int(to_ms(at));
    conn.execute(stmt).await?;
    Ok(())
}

#[async_trait]
impl<B: Backend> WebhookOutbox for B {
    async fn claim_webhook_events(
        &self,
        node: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<WebhookJob>> {
        let stmt = claim::<B>(
            Claim {
                table: "webhook_events",
                due: "state = 'pending' AND next_attempt_at <= $3",
                order: "next_attempt_at, id",
                columns: schema::WEBHOOK_JOB,
            },
            node,
            now,
            lease_until,
            limit,
        );
        let claimed = self.writer().await?.fetch_all(stmt).await?;
        let mut targets = HashMap::new();
        let mut jobs = Vec::with_capacity(claimed.len());
        for r in &claimed {
            let store = r.text("store")?;
            if !targets.contains_key(&store) {
                let config = self.store_config(&store).await?;
                targets.insert(store.clone(), config.webhook);
            }
            let kind = r.text("kind")?;
            jobs.push(WebhookJob {
                id: r.text("id")?,
                target: targets[&store].clone(),
                store,
                order: r.text("order_id")?,
                entry_id: r.text("entry_id")?,
                kind: WebhookEventKind::parse(&kind)
                    .ok_or_else(|| StorageError::Corrupt(format!("webhook event kind `{kind}`")))?,
                attempts: u32::try_from(r.int("attempts")?)
                    .map_err(|_| StorageError::Corrupt("attempts out of range".into()))?,
                created_at: rows::time(r, "created_at")?,
            });
        }
        // Oldest first, as claimed (RETURNING keeps no order).
        jobs.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(jobs)
    }

    async fn record_webhook_outcome(
        &self,
        node: &str,
        event_id: &str,
        outcome: &WebhookOutcome,
    ) -> Result<bool> {
        let stmt = Stmt::new(
            "UPDATE webhook_events SET state = $1, attempts = attempts + 1, last_status = $2,
                 updated_at = $3, next_attempt_at = COALESCE($4, next_attempt_at),
                 lease_owner = NULL, lease_until = NULL
             WHERE id = $5 AND lease_owner = $6",
        )
        .text(outcome.state.as_str())
        .text(&outcome.status)
        .int(to_ms(outcome.at))
        .opt_int(outcome.next_attempt_at.map(to_ms))
        .text(event_id)
        .text(node);
        Ok(self.writer().await?.execute(stmt).await? > 0)
    }

    async fn release_webhook_leases(&self, node: Option<&str>) -> Result<u64> {
        super::queries::release_leases_in(self, "webhook_events", node).await
    }

    async fn webhook_backlog(&self) -> Result<(u64, Option<DateTime<Utc>>)> {
        let stmt = Stmt::new(
            "SELECT COUNT(*) AS depth, MIN(created_at) AS oldest
             FROM webhook_events WHERE state = 'pending'",
        );
        let row = self.reader().await?.fetch_one(stmt).await?;
        Ok((
            row.int("depth")? as u64,
            row.opt_int("oldest")?.map(rows::from_ms).transpose()?,
        ))
    }
}
