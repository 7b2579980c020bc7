//! Bounces, both ways. Every delivery leaves with a signed bounce address as
//! its envelope sender (`alias::bounce`); a report that comes back to it
//! fails that delivery (`report`). Whenever a delivery fails, the original
//! sender gets the relay's own notice (`notice`), naming the alias and never
//! the real address, and sent from the null sender so that no notice is
//! ever answered by another: no notice for a null sender, nor for a sender
//! under the alias domain.

mod inbound;
pub mod notice;
pub mod report;
mod suppression;

pub use suppression::Suppression;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ulid::Ulid;

use crate::storage::{DeliveryJob, HardBounce, Notice, Storage, StorageError};

/// Makes the notices of failed deliveries.
#[derive(Clone)]
pub struct Notifier {
    storage: Arc<dyn Storage>,
    hostname: String,
    alias_domain: String,
    suppression: Suppression,
}

impl Notifier {
    /// Notices written with `storage`, from `hostname`, for aliases under `alias_domain`.
    pub fn new(storage: Arc<dyn Storage>, hostname: &str, alias_domain: &str) -> Self {
        Self {
            storage,
            hostname: hostname.to_string(),
            alias_domain: alias_domain.to_ascii_lowercase(),
            suppression: Suppression::default(),
        }
    }

    /// Count hard bounces that come back as `suppression` says.
    pub fn with_suppression(mut self, suppression: Suppression) -> Self {
        self.suppression = suppression;
        self
    }

    /// Whether `address` is under the alias domain.
    fn is_ours(&self, address: &str) -> bool {
        address.rsplit_once('@').is_some_and(|(_, d)| {
            let d = d.to_ascii_lowercase();
            d == self.alias_domain || d.ends_with(&format!(".{}", self.alias_domain))
        })
    }

    /// The hard bounce `job`'s permanent failure with `reply` counts as
    /// against its recipient, if any; the relay's own notices (from the
    /// null sender) count against nobody.
    pub fn hard_bounce(&self, job: &DeliveryJob, reply: &str) -> Option<HardBounce> {
        if job.mail_from.is_empty() {
            return None;
        }
        self.suppression.classify(reply)
    }

    /// The notice telling the sender of `job`'s message that its delivery
    /// failed with `reply` (already redacted), or `None` when there is
    /// nobody to tell.
    pub async fn failure_notice(
        &self,
        job: &DeliveryJob,
        reply: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Notice>, StorageError> {
        let Some(original) = self.storage.message(&job.message_id).await? else {
            return Ok(None);
        };
        let stored = original.return_path.as_str();
        if stored.is_empty() || !stored.contains('@') {
            return Ok(None);
        }
        let participants = self
            .storage
            .order_participants(&original.store, &original.order)
            .await?;
        // The envelope sender is stored as the participant's alias when it
        // was one of the order's: tell the address the alias has now.
        let (sender, sender_alias) = if self.is_ours(stored) {
            match participants
                .iter()
                .find(|p| p.alias.eq_ignore_ascii_case(stored))
            {
                Some(p) => (p.email.clone(), Some(p.alias.clone())),
                None => return Ok(None),
            }
        } else {
            let alias = participants
                .iter()
                .filter(|p| p.email.eq_ignore_ascii_case(stored))
                .max_by_key(|p| p.created_at)
                .map(|p| p.alias.clone());
            (stored.to_string(), alias)
        };
        if self.is_ours(&sender) {
            return Ok(None);
        }
        let id = Ulid::new().to_string();
        let content = notice::compose(
            &notice::FailedDelivery {
                hostname: &self.hostname,
                rcpt_alias: &job.rcpt_alias,
                reply,
                arrival: original.received_at,
                original: &original.content,
                to_alias: sender_alias.as_deref(),
            },
            &id,
            now,
        );
        Ok(Some(Notice {
            id,
            delivery_id: Ulid::new().to_string(),
            store: original.store,
            order: original.order,
            at: now,
            content,
            rcpt_email: sender,
            rcpt_label: sender_alias.unwrap_or_else(|| "(sender)".into()),
        }))
    }
}
