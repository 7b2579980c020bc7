//! A store's settings: its mask mode, its webhook and its policy (what its
//! aliases take). A change names only what it changes; everything is
//! checked before anything is written, and written in one transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Result, Scope, ServiceError, Services};
use crate::alias::MaskMode;
use crate::policy::{PolicyUpdate, StorePolicy};
use crate::storage::{StoreConfig, StoreUpdate, WebhookChange};
use crate::webhook::address::check_url;

/// A change to a store's settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct SettingsChange {
    /// The form of aliases created from now on.
    pub mask_mode: Option<MaskMode>,
    /// `Some(None)` removes the webhook, `Some(Some(url))` sets it.
    pub webhook_url: Option<Option<String>>,
    /// The webhook's signing secret; only together with a new `webhook_url`.
    pub webhook_secret: Option<String>,
    /// The policy fields to change.
    pub policy: Option<PolicyUpdate>,
    /// How long the store's mail is kept (`Some(None)`: as long as
    /// `storage.retention`); at most that.
    pub retention: Option<Option<Duration>>,
}

impl Services {
    /// The store's settings (the defaults for a store never configured).
    pub async fn store_settings(&self, scope: &Scope, store: &str) -> Result<StoreConfig> {
        scope.allow(store)?;
        Ok(self.storage.store_config(store).await?)
    }

    /// Apply `change` to the store's settings and return them as they now
    /// are. A bad value is `Invalid`, naming it, and nothing is written.
    pub async fn change_settings(
        &self,
        scope: &Scope,
        store: &str,
        change: SettingsChange,
        now: DateTime<Utc>,
    ) -> Result<StoreConfig> {
        scope.allow(store)?;
        let webhook = webhook_change(&change, self.allow_private_webhooks)?;
        if let Some(update) = &change.policy {
            // Every error is in the update's own values: try it on the defaults.
            update
                .apply(&StorePolicy::default())
                .map_err(|e| ServiceError::Invalid(e.to_string()))?;
        }
        if let Some(Some(r)) = change.retention {
            if r < Duration::from_secs(1) || r > self.max_retention {
                return Err(ServiceError::Invalid(format!(
                    "retention must be from 1s to {} (storage.retention)",
                    humantime::format_duration(self.max_retention)
                )));
            }
        }
        if change.mask_mode.is_none()
            && matches!(webhook, WebhookChange::Keep)
            && change.policy.is_none()
            && change.retention.is_none()
        {
            return Ok(self.storage.store_config(store).await?);
        }
        let update = StoreUpdate {
            mask_mode: change.mask_mode,
            webhook,
            policy: change.policy,
            retention: change.retention,
        };
        let config = self.storage.update_store(store, &update, now).await?;
        tracing::info!(store = %store, mask_mode = config.mask_mode.as_str(),
            webhook = config.webhook.is_some(), approved_senders = config.policy.approved_senders.len(),
            "store settings changed");
        Ok(config)
    }
}

/// What the change does to the webhook: a URL the relay may call (no
/// private networks unless allowed), a secret of 16 to 256 printable
/// characters and only with a URL.
fn webhook_change(change: &SettingsChange, allow_private: bool) -> Result<WebhookChange> {
    if let Some(secret) = &change.webhook_secret {
        if !matches!(change.webhook_url, Some(Some(_))) {
            return Err(ServiceError::Invalid(
                "webhook_secret is set together with webhook_url".into(),
            ));
        }
        let printable = secret.bytes().all(|b| b.is_ascii_graphic());
        if !(16..=256).contains(&secret.len()) || !printable {
            return Err(ServiceError::Invalid(
                "webhook_secret must be 16 to 256 printable ASCII characters".into(),
            ));
        }
    }
    Ok(match &change.webhook_url {
        None => WebhookChange::Keep,
        Some(None) => WebhookChange::Remove,
        Some(Some(url)) => {
            let url = check_url(url, allow_private).map_err(ServiceError::Invalid)?;
            WebhookChange::Set {
                url: url.to_string(),
                secret: change.webhook_secret.clone(),
                new_secret: crate::webhook::new_secret(),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(url: Option<Option<&str>>, secret: Option<&str>) -> SettingsChange {
        SettingsChange {
            webhook_url: url.map(|u| u.map(str::to_string)),
            webhook_secret: secret.map(str::to_string),
            ..SettingsChange::default()
        }
    }

    #[test]
    fn webhook_changes_are_checked() {
        assert!(matches!(
            webhook_change(&change(None, None), false),
            Ok(WebhookChange::Keep)
        ));
        assert!(matches!(
            webhook_change(&change(Some(None), None), false),
            Ok(WebhookChange::Remove)
        ));
        let lone_secret = webhook_change(&change(None, Some("0123456789abcdef")), false);
        assert!(matches!(lone_secret, Err(ServiceError::Invalid(m)) if m.contains("together")));
        let short = webhook_change(
            &change(Some(Some("https://hooks.example/x")), Some("short")),
            true,
        );
        assert!(matches!(short, Err(ServiceError::Invalid(m)) if m.contains("16 to 256")));
        let private = webhook_change(&change(Some(Some("http://127.0.0.1/x")), None), false);
        assert!(matches!(private, Err(ServiceError::Invalid(_))));
        let set = webhook_change(&change(Some(Some("http://127.0.0.1/x")), None), true);
        assert!(matches!(set, Ok(WebhookChange::Set { secret: None, .. })));
    }
}
