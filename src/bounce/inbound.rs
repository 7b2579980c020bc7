//! Mail that arrives at a bounce address. The address's tag was verified at
//! RCPT; here the report is read and, when it says the delivery failed, the
//! delivery is failed (with the remote's words, redacted) and the sender's
//! notice prepared, to be committed with the rest of the transaction. The
//! report itself is not kept: it quotes the real address.

use chrono::{DateTime, Utc};

use super::{report, Notifier};
use crate::queue::redact;
use crate::storage::{AttemptRecord, DeliveryState, StorageError, Write};

impl Notifier {
    /// The writes that `body`, sent to the bounce addresses of
    /// `delivery_ids`, calls for: one per delivery the report fails.
    pub async fn bounce_writes(
        &self,
        delivery_ids: &[String],
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Vec<Write>, StorageError> {
        let statuses = report::parse(body);
        let Some(failure) = report::failure(&statuses) else {
            tracing::info!(deliveries = ?delivery_ids, "mail to a bounce address that reports no failure; dropped");
            return Ok(Vec::new());
        };
        let mut writes = Vec::new();
        for id in delivery_ids {
            let Some(job) = self.storage.delivery(id).await? else {
                tracing::info!(delivery = %id, "bounce for a delivery no longer stored; dropped");
                continue;
            };
            let reply = redact(&failure, &job.rcpt_email, &job.rcpt_alias);
            crate::message_log::bounce(&job, &reply);
            let notice = self.failure_notice(&job, &reply, now).await?;
            let hard_bounce = self.hard_bounce(&job, &reply);
            if let Some(n) = &notice {
                crate::message_log::dsn(&job, (&n.id, &n.delivery_id));
            }
            writes.push(Write::Bounce {
                delivery_id: job.id,
                record: AttemptRecord {
                    at: now,
                    state: DeliveryState::Failed,
                    hard_bounce,
                    reply,
                    next_attempt_at: None,
                },
                notice: notice.map(Box::new),
            });
        }
        Ok(writes)
    }
}
