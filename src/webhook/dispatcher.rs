//! Sends the outbox's due events: leases up to `workers` at a time (so the
//! nodes of a cluster share the work), POSTs each, and writes the outcome
//! under the lease. Any 2xx is success; anything else (another status, a
//! timeout, a refused connection) is retried with backoff until
//! `give_up_after`, counted from the event's creation.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use reqwest::header::CONTENT_TYPE;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::address::{check_url, PublicOnly};
use super::{signature, WebhookEvent};
use crate::config::WebhookSettings;
use crate::queue::{Next, RetryPolicy};
use crate::storage::{Storage, WebhookJob, WebhookOutcome, WebhookState};

/// Pause after a storage error before claiming again.
const STORAGE_BACKOFF: Duration = Duration::from_secs(1);
/// Longest status kept for an attempt.
const MAX_STATUS: usize = 200;

/// Sends stores' webhook events from the outbox: leases due events, POSTs
/// each signed, with up to `workers` at once, and records the outcome with
/// backoff. `daemon::serve` runs it on every node.
pub struct WebhookDispatcher {
    storage: Arc<dyn Storage>,
    client: reqwest::Client,
    /// This process's name on leases.
    node: String,
    policy: RetryPolicy,
    workers: usize,
    lease: Duration,
    poll_interval: Duration,
    allow_private: bool,
}

impl WebhookDispatcher {
    /// A dispatcher over `storage`, with the `[webhook]` settings.
    pub fn new(
        storage: Arc<dyn Storage>,
        node: String,
        settings: &WebhookSettings,
    ) -> Result<Self, reqwest::Error> {
        let mut client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // A redirect is a failure: following one could leave the checked host.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ct-relay/", env!("CARGO_PKG_VERSION")));
        if !settings.allow_private_networks {
            client = client.dns_resolver(Arc::new(PublicOnly));
        }
        Ok(Self {
            storage,
            client: client.build()?,
            node,
            policy: RetryPolicy {
                initial: settings.retry_initial,
                max: settings.retry_max,
                give_up_after: settings.give_up_after,
            },
            workers: settings.workers,
            lease: settings.lease,
            poll_interval: settings.poll_interval,
            allow_private: settings.allow_private_networks,
        })
    }

    /// Run until `shutdown`; then wait up to `grace` for requests in flight
    /// and give back the leases of any that did not finish.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let mut in_flight = JoinSet::new();
        while !*shutdown.borrow() {
            while in_flight.try_join_next().is_some() {}
            let free = self.workers.saturating_sub(in_flight.len());
            let mut all_busy = false;
            if free > 0 {
                let now = Utc::now();
                match self
                    .storage
                    .claim_webhook_events(&self.node, now, now + self.lease, free as u32)
                    .await
                {
                    Ok(jobs) => {
                        all_busy = jobs.len() == free;
                        for job in jobs {
                            let me = self.clone();
                            in_flight.spawn(async move { me.send(job).await });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot claim webhook events");
                        tokio::select! {
                            _ = tokio::time::sleep(STORAGE_BACKOFF) => {}
                            _ = shutdown.changed() => {}
                        }
                        continue;
                    }
                }
            }
            if all_busy {
                // More may be due: claim again as soon as a worker is free.
                tokio::select! {
                    _ = in_flight.join_next() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
        }
        let finished = tokio::time::timeout(grace, async {
            while in_flight.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            in_flight.abort_all();
        }
        if let Err(e) = self.storage.release_webhook_leases(Some(&self.node)).await {
            tracing::warn!(error = %e, "could not return webhook leases; they lapse on their own");
        }
    }

    async fn send(&self, job: WebhookJob) {
        let Some(target) = job.target.clone() else {
            return self.finish(&job, Err("webhook removed".into()), true).await;
        };
        if let Err(why) = check_url(&target.url, self.allow_private) {
            return self.finish(&job, Err(why), true).await;
        }
        let entry = match self
            .storage
            .timeline_entry(&job.store, &job.order, &job.entry_id)
            .await
        {
            Ok(Some(entry)) => entry,
            Ok(None) => {
                let gone = "the timeline entry no longer exists".to_string();
                return self.finish(&job, Err(gone), true).await;
            }
            Err(e) => {
                // The lease lapses and the event is sent later.
                tracing::warn!(event = %job.id, error = %e, "cannot load timeline entry");
                return;
            }
        };
        let event = WebhookEvent {
            id: job.id.clone(),
            kind: job.kind,
            created_at: job.created_at,
            store: job.store.clone(),
            order: job.order.clone(),
            entry,
        };
        let body = serde_json::to_vec(&event).expect("plain data serializes");
        let signed = signature::sign(&target.secret, Utc::now().timestamp(), &body);
        let sent = self
            .client
            .post(&target.url)
            .header(CONTENT_TYPE, "application/json")
            .header(signature::HEADER, signed)
            .header("CT-Relay-Event-Id", &job.id)
            .header("CT-Relay-Event-Type", job.kind.as_str())
            .body(body)
            .send()
            .await;
        let result = match sent {
            Ok(response) if response.status().is_success() => {
                Ok(format!("HTTP {}", response.status().as_u16()))
            }
            Ok(response) => Err(format!("HTTP {}", response.status().as_u16())),
            Err(e) => Err(describe(&e)),
        };
        self.finish(&job, result, false).await;
    }

    /// Record an outcome: `Ok` sent; `Err` retried unless `final_failure`
    /// or the event is past `give_up_after`.
    async fn finish(&self, job: &WebhookJob, result: Result<String, String>, final_failure: bool) {
        let now = Utc::now();
        let attempts = job.attempts + 1;
        let outcome = match result {
            Ok(status) => WebhookOutcome {
                at: now,
                state: WebhookState::Sent,
                status,
                next_attempt_at: None,
            },
            Err(status) => {
                let status: String = status.chars().take(MAX_STATUS).collect();
                match self.policy.after_failure(attempts, job.created_at, now) {
                    Next::RetryAt(at) if !final_failure => WebhookOutcome {
                        at: now,
                        state: WebhookState::Pending,
                        status,
                        next_attempt_at: Some(at),
                    },
                    _ => WebhookOutcome {
                        at: now,
                        state: WebhookState::Failed,
                        status,
                        next_attempt_at: None,
                    },
                }
            }
        };
        let state = outcome.state.as_str();
        if outcome.state == WebhookState::Sent {
            tracing::debug!(event = %job.id, store = %job.store, order = %job.order,
                kind = job.kind.as_str(), attempt = attempts, status = %outcome.status, "webhook sent");
        } else {
            tracing::warn!(event = %job.id, store = %job.store, order = %job.order,
                kind = job.kind.as_str(), attempt = attempts, status = %outcome.status,
                state, "webhook not sent");
        }
        crate::telemetry::webhook_send(match outcome.state {
            WebhookState::Sent => "sent",
            WebhookState::Pending => "retry",
            WebhookState::Failed => "failed",
        });
        match self
            .storage
            .record_webhook_outcome(&self.node, &job.id, &outcome)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(event = %job.id, "webhook lease lost before the outcome was written")
            }
            Err(e) => {
                tracing::warn!(event = %job.id, error = %e, "cannot record webhook outcome; it will be sent again")
            }
        }
    }
}

/// A request error and its causes, without the URL (it may hold credentials).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut text = kind.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
