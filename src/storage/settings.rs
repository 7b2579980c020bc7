//! A store's settings as stored: its mask mode, its webhook (URL and signing
//! secret) and its policy. The rules about what may be set are in
//! `crate::service::settings`; this module writes what they allow, in one
//! statement per change so concurrent updates of different settings never
//! undo each other.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::rows::{self, to_ms, Columns};
use super::sql::{Backend, SqlConn, Stmt};
use super::{schema, Result, StorageError};
use crate::alias::MaskMode;
use crate::policy::{PolicyUpdate, StorePolicy};

/// Where a store's events go, and the secret they are signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    /// The URL events are POSTed to.
    pub url: String,
    /// The secret they are signed with.
    pub secret: String,
}

/// A store's settings as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The store.
    pub store: String,
    /// The form of aliases created from now on.
    pub mask_mode: MaskMode,
    /// Where its events go, if anywhere.
    pub webhook: Option<WebhookTarget>,
    /// What its order aliases take (the trust rules).
    pub policy: StorePolicy,
    /// How long its mail and timelines are kept, when shorter than
    /// `storage.retention`; `None`: that.
    pub retention: Option<std::time::Duration>,
}

/// What a settings update changes; `None`/`Keep` leave a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct StoreUpdate {
    /// A new mask mode.
    pub mask_mode: Option<MaskMode>,
    /// What happens to the webhook.
    pub webhook: WebhookChange,
    /// Applied to the stored policy inside the update's transaction, so
    /// two updates of different policy fields never undo each other.
    /// Validated by its caller (`PolicyUpdate::apply` on the defaults).
    pub policy: Option<PolicyUpdate>,
    /// A new retention (`Some(None)`: back to the global one).
    pub retention: Option<Option<std::time::Duration>>,
}

/// A change to the webhook.
#[derive(Debug, Clone, Default)]
pub enum WebhookChange {
    /// Leave it as it is.
    #[default]
    Keep,
    /// Remove the webhook; its pending events fail.
    Remove,
    /// Send events to `url`, signed with `secret` if given, else with the
    /// store's current secret, else with `new_secret`.
    Set {
        /// The URL.
        url: String,
        /// The secret given, if any.
        secret: Option<String>,
        /// A fresh secret, used when the store has none and none was given.
        new_secret: String,
    },
}

/// A store's settings as stored; the rules of what may be set are
/// `service::settings`'.
#[async_trait]
pub trait StoreSettings: Send + Sync {
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
}

/// The settings in a `stores` row (`schema::STORE`), or the defaults.
fn config_from_row(store: &str, row: Option<&impl Columns>) -> Result<StoreConfig> {
    let Some(r) = row else {
        return Ok(StoreConfig {
            store: store.to_string(),
            mask_mode: MaskMode::Hard,
            webhook: None,
            policy: Default::default(),
            retention: None,
        });
    };
    let webhook = match (r.opt_text("webhook_url")?, r.opt_text("webhook_secret")?) {
        (Some(url), Some(secret)) => Some(WebhookTarget { url, secret }),
        (None, _) => None,
        (Some(_), None) => {
            return Err(StorageError::Corrupt(format!(
                "store {store}: webhook without secret"
            )))
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
        retention: r
            .opt_int("retention_ms")?
            .map(|ms| std::time::Duration::from_millis(ms.max(0) as u64)),
    })
}

#[async_trait]
impl<B: Backend> StoreSettings for B {
    async fn store_config(&self, store: &str) -> Result<StoreConfig> {
        let sql = format!("SELECT {} FROM stores WHERE store = $1", schema::STORE);
        let row = self
            .reader()
            .await?
            .fetch_optional(Stmt::new(sql).text(store))
            .await?;
        config_from_row(store, row.as_ref())
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
            WebhookChange::Set {
                url,
                secret,
                new_secret,
            } => (
                true,
                Some(url.as_str()),
                secret.as_deref(),
                Some(new_secret.as_str()),
            ),
        };
        let mut writer = self.writer().await?;
        let mut tx = B::begin_write(&mut writer).await?;
        // One statement, so concurrent updates of different settings
        // never undo each other.
        let upsert = Stmt::new(format!(
            "INSERT INTO stores (store, mask_mode, updated_at, webhook_url, webhook_secret)
             VALUES ($1, COALESCE($2, 'hard'), $3, $4, COALESCE($5, $6))
             ON CONFLICT (store) DO UPDATE SET
                 mask_mode = COALESCE($2, stores.mask_mode),
                 updated_at = $3,
                 webhook_url = CASE WHEN $7 THEN $4 ELSE stores.webhook_url END,
                 webhook_secret = CASE WHEN NOT $7 THEN stores.webhook_secret
                                       WHEN $4 IS NULL THEN NULL
                                       ELSE COALESCE($5, stores.webhook_secret, $6) END
             RETURNING {}",
            schema::STORE
        ))
        .text(store)
        .opt_text(update.mask_mode.map(|m| m.as_str()))
        .int(to_ms(now))
        .opt_text(url)
        .opt_text(secret)
        .opt_text(new_secret)
        .bool(change);
        let row = tx.fetch_one(upsert).await?;
        if matches!(update.webhook, WebhookChange::Remove) {
            let fail_pending = Stmt::new(
                "UPDATE webhook_events SET state = 'failed', last_status = 'webhook removed',
                     updated_at = $2, lease_owner = NULL, lease_until = NULL
                 WHERE store = $1 AND state = 'pending'",
            )
            .text(store)
            .int(to_ms(now));
            tx.execute(fail_pending).await?;
        }
        let mut config = config_from_row(store, Some(&row))?;
        if let Some(change) = &update.policy {
            // The upsert above holds the row until commit.
            config.policy = change
                .apply(&config.policy)
                .map_err(|e| StorageError::Corrupt(format!("store {store}: policy update: {e}")))?;
            let policy = serde_json::to_string(&config.policy)
                .map_err(|e| StorageError::Corrupt(format!("store {store}: policy: {e}")))?;
            tx.execute(
                Stmt::new("UPDATE stores SET policy = $1 WHERE store = $2")
                    .text(policy)
                    .text(store),
            )
            .await?;
        }
        if let Some(retention) = update.retention {
            let ms = retention.map(|d| d.as_millis().min(i64::MAX as u128) as i64);
            tx.execute(
                Stmt::new("UPDATE stores SET retention_ms = $1 WHERE store = $2")
                    .opt_int(ms)
                    .text(store),
            )
            .await?;
            config.retention = retention;
        }
        B::commit(tx).await?;
        Ok(config)
    }
}
