//! Store settings and the webhook outbox. A store may name a webhook URL;
//! every timeline change of its orders (a message accepted or refused, a
//! delivery changing state) then leaves an event row, written in the same
//! transaction as the change, which the webhook dispatcher leases and sends.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Result;
use crate::alias::MaskMode;
use crate::policy::{PolicyUpdate, StorePolicy};

/// Where a store's events go, and the secret they are signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    pub url: String,
    pub secret: String,
}

/// A store's settings as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub store: String,
    pub mask_mode: MaskMode,
    pub webhook: Option<WebhookTarget>,
    /// What its order aliases take (the trust rules).
    pub policy: StorePolicy,
}

/// What a settings update changes; `None`/`Keep` leave a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct StoreUpdate {
    pub mask_mode: Option<MaskMode>,
    pub webhook: WebhookChange,
    /// Applied to the stored policy inside the update's transaction, so
    /// two updates of different policy fields never undo each other.
    /// Validated by its caller (`PolicyUpdate::apply` on the defaults).
    pub policy: Option<PolicyUpdate>,
}

#[derive(Debug, Clone, Default)]
pub enum WebhookChange {
    #[default]
    Keep,
    /// Remove the webhook; its pending events fail.
    Remove,
    /// Send events to `url`, signed with `secret` if given, else with the
    /// store's current secret, else with `new_secret`.
    Set {
        url: String,
        secret: Option<String>,
        new_secret: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
}

impl WebhookEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEventKind::MessageAccepted => "message.accepted",
            WebhookEventKind::MessageRefused => "message.refused",
            WebhookEventKind::DeliveryUpdated => "delivery.updated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "message.accepted" => WebhookEventKind::MessageAccepted,
            "message.refused" => WebhookEventKind::MessageRefused,
            "delivery.updated" => WebhookEventKind::DeliveryUpdated,
            _ => return None,
        })
    }
}

/// A leased event, with where it goes (`None` when the store's webhook was
/// removed after the event was written).
#[derive(Debug, Clone)]
pub struct WebhookJob {
    pub id: String,
    pub store: String,
    pub order: String,
    pub entry_id: String,
    pub kind: WebhookEventKind,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub target: Option<WebhookTarget>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookState {
    Pending,
    Sent,
    Failed,
}

impl WebhookState {
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
    pub at: DateTime<Utc>,
    pub state: WebhookState,
    /// "HTTP 204", "HTTP 500", "timed out", … (never the URL).
    pub status: String,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait WebhookOutbox: Send + Sync {
    /// The store's settings; defaults for a store never configured.
    async fn store_config(&self, store: &str) -> Result<StoreConfig>;
    /// Apply `update` atomically and return the settings that result.
    /// Removing the webhook fails the store's pending events.
    async fn update_store(
        &self,
        store: &str,
        update: &StoreUpdate,
        now: DateTime<Utc>,
    ) -> Result<StoreConfig>;
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

/// `impl WebhookOutbox for $storage` plus `insert_webhook_event`, in SQL
/// both backends accept (see `shared.rs`).
macro_rules! impl_outbox {
    ($storage:ident, $db:ty, claim_lock: $lock:literal $(,)?) => {
        const _: () = {
            use chrono::{DateTime, Utc};

            use $crate::storage::outbox::*;
            use $crate::storage::rows::{self, to_ms, Columns};
            use $crate::storage::{Result, StorageError};

            impl $storage {
                /// The event announcing a change to timeline entry `entry_id`,
                /// written only if the store has a webhook.
                pub(crate) async fn insert_webhook_event<'e, E>(
                    executor: E,
                    store: &str,
                    order: &str,
                    entry_id: &str,
                    kind: WebhookEventKind,
                    at: DateTime<Utc>,
                ) -> Result<()>
                where
                    E: sqlx::Executor<'e, Database = $db>,
                {
                    sqlx::query(
                        "INSERT INTO webhook_events (id, store, order_id, entry_id, kind, created_at, state,
                             next_attempt_at, updated_at)
                         SELECT $1, $2, $3, $4, $5, $6, 'pending', $6, $6
                         FROM stores WHERE store = $2 AND webhook_url IS NOT NULL",
                    )
                    .bind(ulid::Ulid::new().to_string())
                    .bind(store)
                    .bind(order)
                    .bind(entry_id)
                    .bind(kind.as_str())
                    .bind(to_ms(at))
                    .execute(executor)
                    .await?;
                    Ok(())
                }
            }

            fn store_config(store: &str, row: Option<&impl Columns>) -> Result<StoreConfig> {
                let Some(r) = row else {
                    return Ok(StoreConfig {
                        store: store.to_string(),
                        mask_mode: $crate::alias::MaskMode::Hard,
                        webhook: None,
                        policy: Default::default(),
                    });
                };
                let webhook = match (r.opt_text("webhook_url")?, r.opt_text("webhook_secret")?) {
                    (Some(url), Some(secret)) => Some(WebhookTarget { url, secret }),
                    (None, _) => None,
                    (Some(_), None) => {
                        return Err(StorageError::Corrupt(format!("store {store}: webhook without secret")))
                    }
                };
                let policy = match r.opt_text("policy")? {
                    Some(json) => serde_json::from_str(&json)
                        .map_err(|e| StorageError::Corrupt(format!("store {store}: policy: {e}")))?,
                    None => Default::default(),
                };
                Ok(StoreConfig {
                    store: store.to_string(),
                    mask_mode: rows::mask_mode(r, "mask_mode")?,
                    webhook,
                    policy,
                })
            }

            #[async_trait::async_trait]
            impl WebhookOutbox for $storage {
                async fn store_config(&self, store: &str) -> Result<StoreConfig> {
                    let row = sqlx::query("SELECT mask_mode, webhook_url, webhook_secret, policy FROM stores WHERE store = $1")
                        .bind(store)
                        .fetch_optional(&mut *self.reader().await?)
                        .await?;
                    store_config(store, row.as_ref())
                }

                async fn update_store(
                    &self,
                    store: &str,
                    update: &StoreUpdate,
                    now: DateTime<Utc>,
                ) -> Result<StoreConfig> {
                    let (change, url, secret, new_secret) = match &update.webhook {
                        WebhookChange::Keep => (false, None, None, None),
                        WebhookChange::Remove => (true, None, None, None),
                        WebhookChange::Set { url, secret, new_secret } => {
                            (true, Some(url.as_str()), secret.as_deref(), Some(new_secret.as_str()))
                        }
                    };
                    let mut writer = self.writer().await?;
                    let mut tx = Self::begin_write(&mut writer).await?;
                    // One statement, so concurrent updates of different
                    // settings never undo each other.
                    let row = sqlx::query(
                        "INSERT INTO stores (store, mask_mode, updated_at, webhook_url, webhook_secret)
                         VALUES ($1, COALESCE($2, 'hard'), $3, $4, COALESCE($5, $6))
                         ON CONFLICT (store) DO UPDATE SET
                             mask_mode = COALESCE($2, stores.mask_mode),
                             updated_at = $3,
                             webhook_url = CASE WHEN $7 THEN $4 ELSE stores.webhook_url END,
                             webhook_secret = CASE WHEN NOT $7 THEN stores.webhook_secret
                                                   WHEN $4 IS NULL THEN NULL
                                                   ELSE COALESCE($5, stores.webhook_secret, $6) END
                         RETURNING mask_mode, webhook_url, webhook_secret, policy",
                    )
                    .bind(store)
                    .bind(update.mask_mode.map(|m| m.as_str()))
                    .bind(to_ms(now))
                    .bind(url)
                    .bind(secret)
                    .bind(new_secret)
                    .bind(change)
                    .fetch_one(&mut *tx)
                    .await?;
                    if matches!(update.webhook, WebhookChange::Remove) {
                        sqlx::query(
                            "UPDATE webhook_events SET state = 'failed', last_status = 'webhook removed',
                                 updated_at = $2, lease_owner = NULL, lease_until = NULL
                             WHERE store = $1 AND state = 'pending'",
                        )
                        .bind(store)
                        .bind(to_ms(now))
                        .execute(&mut *tx)
                        .await?;
                    }
                    let mut config = store_config(store, Some(&row))?;
                    if let Some(change) = &update.policy {
                        // The upsert above holds the row until commit.
                        config.policy = change.apply(&config.policy).map_err(|e| {
                            StorageError::Corrupt(format!("store {store}: policy update: {e}"))
                        })?;
                        sqlx::query("UPDATE stores SET policy = $1 WHERE store = $2")
                            .bind(serde_json::to_string(&config.policy).map_err(|e| {
                                StorageError::Corrupt(format!("store {store}: policy: {e}"))
                            })?)
                            .bind(store)
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    Ok(config)
                }

                async fn claim_webhook_events(
                    &self,
                    node: &str,
                    now: DateTime<Utc>,
                    lease_until: DateTime<Utc>,
                    limit: u32,
                ) -> Result<Vec<WebhookJob>> {
                    let sql = format!(
                        "UPDATE webhook_events SET lease_owner = $1, lease_until = $2
                         WHERE id IN (
                             SELECT id FROM webhook_events
                             WHERE state = 'pending' AND next_attempt_at <= $3 AND {free}
                             ORDER BY next_attempt_at, id LIMIT $4 {lock})
                         RETURNING id, store, order_id, entry_id, kind, attempts, created_at",
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
                    let mut targets = std::collections::HashMap::new();
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
                    let done = sqlx::query(
                        "UPDATE webhook_events SET state = $1, attempts = attempts + 1, last_status = $2,
                             updated_at = $3, next_attempt_at = COALESCE($4, next_attempt_at),
                             lease_owner = NULL, lease_until = NULL
                         WHERE id = $5 AND lease_owner = $6",
                    )
                    .bind(outcome.state.as_str())
                    .bind(&outcome.status)
                    .bind(to_ms(outcome.at))
                    .bind(outcome.next_attempt_at.map(to_ms))
                    .bind(event_id)
                    .bind(node)
                    .execute(&mut *self.writer().await?)
                    .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn release_webhook_leases(&self, node: Option<&str>) -> Result<u64> {
                    self.release_leases_in("webhook_events", node).await
                }

                async fn webhook_backlog(&self) -> Result<(u64, Option<DateTime<Utc>>)> {
                    let row = sqlx::query(
                        "SELECT COUNT(*) AS depth, MIN(created_at) AS oldest
                         FROM webhook_events WHERE state = 'pending'",
                    )
                    .fetch_one(&mut *self.reader().await?)
                    .await?;
                    Ok((
                        row.int("depth")? as u64,
                        row.opt_int("oldest")?.map(rows::from_ms).transpose()?,
                    ))
                }
            }
        };
    };
}

pub(crate) use impl_outbox;
