//! Runs deliveries. It leases due deliveries from storage (so several nodes
//! can share one queue), runs up to `workers` attempts at once, and writes
//! each outcome back under its lease. Woken at once after each commit, and
//! otherwise polls at the next due time.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use super::backoff::{Next, RetryPolicy};
use crate::bounce::Notifier;
use crate::delivery::dkim::DkimSigning;
use crate::delivery::{DeliveryEnvelope, Outcome, Transport};
use crate::storage::{AttemptRecord, Committer, DeliveryJob, DeliveryState, Storage};

/// Pause after a storage error before claiming again.
const STORAGE_BACKOFF: Duration = Duration::from_secs(1);

pub struct QueueRunner {
    pub storage: Arc<dyn Storage>,
    pub transport: Arc<dyn Transport>,
    /// Outcomes are group-committed with accepted mail.
    pub committer: Committer,
    /// This process's name on leases.
    pub node: String,
    pub policy: RetryPolicy,
    pub workers: usize,
    pub lease: Duration,
    pub poll_interval: Duration,
    pub wake: Arc<Notify>,
    /// Tells senders about failed deliveries.
    pub notifier: Notifier,
    /// Signs each message as it leaves, when configured.
    pub dkim: Option<Arc<DkimSigning>>,
}

impl QueueRunner {
    /// Run until `shutdown`; then wait up to `grace` for attempts in flight and
    /// give back the leases of any that did not finish.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        // Jobs leased and waiting for a worker. Claims fetch up to twice the
        // workers and happen only once half of that is used up, so one
        // claim (one write) serves many deliveries.
        let capacity = self.workers * 2;
        let mut pending: VecDeque<(DeliveryJob, Instant)> = VecDeque::new();
        let mut in_flight = JoinSet::new();
        while !*shutdown.borrow() {
            while in_flight.try_join_next().is_some() {}
            let held = pending.len() + in_flight.len();
            let mut got_all = false;
            if held <= self.workers {
                let want = capacity - held;
                let now = Utc::now();
                match self
                    .storage
                    .claim_due(&self.node, now, now + self.lease, want as u32)
                    .await
                {
                    Ok(jobs) => {
                        got_all = jobs.len() == want;
                        let at = Instant::now();
                        pending.extend(jobs.into_iter().map(|j| (j, at)));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot claim deliveries");
                        tokio::select! {
                            _ = tokio::time::sleep(STORAGE_BACKOFF) => {}
                            _ = shutdown.changed() => {}
                        }
                        continue;
                    }
                }
            }
            while in_flight.len() < self.workers {
                let Some((job, claimed)) = pending.pop_front() else {
                    break;
                };
                if claimed.elapsed() > self.lease / 2 {
                    // Too little of the lease is left to finish an attempt:
                    // let it lapse and claim the delivery afresh later.
                    continue;
                }
                let me = self.clone();
                in_flight.spawn(async move { me.attempt(job).await });
            }
            if got_all && in_flight.len() < self.workers {
                continue; // maybe more are due
            }
            let nap = self.until_next_due(held > self.workers).await;
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(nap) => {}
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                _ = shutdown.changed() => {}
            }
        }
        let waiting = in_flight.len();
        if waiting > 0 {
            tracing::info!(deliveries = waiting, "waiting for deliveries in flight");
        }
        let finished = tokio::time::timeout(grace, async {
            while in_flight.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            in_flight.abort_all();
        }
        match self.storage.release_leases(Some(&self.node)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                deliveries = n,
                "returned unfinished deliveries to the queue"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not return leases; they lapse on their own")
            }
        }
    }

    async fn until_next_due(&self, busy: bool) -> Duration {
        if busy {
            return self.poll_interval;
        }
        match self.storage.next_due().await {
            Ok(Some(due)) => (due - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .clamp(Duration::from_millis(10), self.poll_interval),
            _ => self.poll_interval,
        }
    }

    async fn attempt(&self, job: DeliveryJob) {
        let content = match self.storage.message_content(&job.message_id).await {
            Ok(Some(c)) => c,
            Ok(None) => {
                tracing::error!(delivery = %job.id, message = %job.message_id, "message content missing");
                self.record(
                    &job,
                    Outcome::Failed {
                        reply: "554 5.3.0 message content missing".into(),
                    },
                )
                .await;
                return;
            }
            Err(e) => {
                // The lease lapses and the delivery is tried again.
                tracing::warn!(delivery = %job.id, error = %e, "cannot load message");
                return;
            }
        };
        let content = match &self.dkim {
            Some(dkim) => dkim.sign(&content).unwrap_or_else(|e| {
                tracing::warn!(delivery = %job.id, error = %e, "cannot DKIM-sign; sending unsigned");
                content
            }),
            None => content,
        };
        let envelope = DeliveryEnvelope {
            delivery_id: &job.id,
            mail_from: &job.mail_from,
            rcpt_to: &job.rcpt_email,
        };
        let outcome = self.transport.send(&envelope, &content).await;
        self.record(&job, outcome).await;
    }

    async fn record(&self, job: &DeliveryJob, outcome: Outcome) {
        let now = Utc::now();
        let attempts = job.attempts + 1;
        let record = match outcome {
            Outcome::Delivered { reply } => AttemptRecord {
                at: now,
                state: DeliveryState::Delivered,
                reply: redact(&reply, &job.rcpt_email, &job.rcpt_alias),
                next_attempt_at: None,
            },
            Outcome::Failed { reply } => AttemptRecord {
                at: now,
                state: DeliveryState::Failed,
                reply: redact(&reply, &job.rcpt_email, &job.rcpt_alias),
                next_attempt_at: None,
            },
            Outcome::Retry { reply } => {
                let reply = redact(&reply, &job.rcpt_email, &job.rcpt_alias);
                match self.policy.after_failure(attempts, job.created_at, now) {
                    Next::RetryAt(at) => AttemptRecord {
                        at: now,
                        state: DeliveryState::Retrying,
                        reply,
                        next_attempt_at: Some(at),
                    },
                    Next::GiveUp => AttemptRecord {
                        at: now,
                        state: DeliveryState::Failed,
                        reply: format!("{reply} (gave up after {attempts} attempts)"),
                        next_attempt_at: None,
                    },
                }
            }
        };
        tracing::info!(
            delivery = %job.id,
            message = %job.message_id,
            to = %job.rcpt_alias,
            attempt = attempts,
            state = record.state.as_str(),
            reply = %record.reply,
            "delivery attempt"
        );
        crate::telemetry::delivery_attempt(record.state.as_str());
        let notice = if record.state == DeliveryState::Failed {
            match self.notifier.failure_notice(job, &record.reply, now).await {
                Ok(notice) => notice,
                Err(e) => {
                    // Written later: the lease lapses and the delivery is tried again.
                    tracing::warn!(delivery = %job.id, error = %e, "cannot prepare the failure notice");
                    return;
                }
            }
        } else {
            None
        };
        match self
            .committer
            .record_attempt(&self.node, &job.id, record, notice)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(delivery = %job.id, "lease lost before the outcome was written")
            }
            Err(e) => {
                tracing::warn!(delivery = %job.id, error = %e, "cannot record attempt; it will be retried")
            }
        }
    }
}

/// Replace the real address in a remote reply by its alias, so replies can be
/// stored, logged and shown on the timeline.
pub fn redact(reply: &str, real: &str, alias: &str) -> String {
    let mut map = crate::masking::AliasMap::new();
    map.insert(real.to_lowercase(), alias.to_string());
    crate::masking::headers::replace_text(reply, &map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_the_real_address_in_any_case() {
        assert_eq!(
            redact(
                "550 5.1.1 <John@Example.com>: unknown",
                "john@example.com",
                "x@ct.test"
            ),
            "550 5.1.1 <x@ct.test>: unknown"
        );
    }
}
