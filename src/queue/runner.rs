//! Runs deliveries. Fresh mail comes in memory from this node's acceptor
//! (already leased, with its content; see `handoff`); the rest (retries,
//! mail other nodes or an earlier run left) is leased from storage, so
//! several nodes can share one queue. Up to `workers` attempts talk to the
//! next hop at once, and each outcome is written back under its lease.
//! Under the mx transport each destination also has its own limits and
//! backoff (`destinations`): a delivery whose destination is busy waits in
//! memory (up to one per attempt it may have) or is postponed in storage,
//! without an attempt counted. Claims happen when the committer says unleased mail was queued, and
//! otherwise at the next due time.

use super::redact::redact;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::backoff::{Next, RetryPolicy};
use super::destinations::{DestinationPermit, Destinations, Gate};
use super::handoff::{FreshDelivery, HandoffReceiver};
use crate::bounce::Notifier;
use crate::delivery::dkim::DkimSigning;
use crate::delivery::{DeliveryEnvelope, Outcome, Transport};
use crate::storage::{AttemptRecord, Committer, DeliveryJob, DeliveryState, Storage};

/// Pause after a storage error before claiming again.
const STORAGE_BACKOFF: Duration = Duration::from_secs(1);
/// Attempts whose outcome is being committed, per sending slot: beyond
/// this, a stalled database stops new attempts.
const RECORDING_PER_SLOT: usize = 4;
/// Postponed deliveries given back in one statement, at most.
const POSTPONED_PER_WRITE: usize = 500;

/// Works the delivery queue of one node: leases due deliveries, attempts
/// each through the transport with up to `workers` at once, and writes each
/// outcome (delivered, retry with backoff, failed with a notice to the
/// sender) under its lease. `daemon::serve` runs it until shutdown.
pub struct QueueRunner {
    /// Where deliveries and outcomes are.
    pub storage: Arc<dyn Storage>,
    /// How mail leaves.
    pub transport: Arc<dyn Transport>,
    /// Outcomes are group-committed with accepted mail.
    pub committer: Committer,
    /// This process's name on leases.
    pub node: String,
    /// When a deferred delivery is tried again, and when it fails.
    pub policy: RetryPolicy,
    /// Attempts at once.
    pub workers: usize,
    /// Per-destination limits and suspension (`delivery.destination_*`,
    /// `delivery.destinations`, `delivery.retry_*`).
    pub limits: crate::config::DeliverySettings,
    /// How long a claim holds.
    pub lease: Duration,
    /// How often the queue is read when nothing is due.
    pub poll_interval: Duration,
    /// Notified when unleased deliveries were queued.
    pub wake: Arc<Notify>,
    /// Tells senders about failed deliveries.
    pub notifier: Notifier,
    /// Signs each message as it leaves, when configured.
    pub dkim: Option<Arc<DkimSigning>>,
}

/// A leased delivery waiting for a sending slot; the content is there when
/// it came from the acceptor.
struct Leased {
    job: DeliveryJob,
    content: Option<Bytes>,
    since: Instant,
    /// Its destination, when the transport has per-destination limits.
    destination: Option<String>,
}

/// One of the `workers` sending slots; says so when given back.
struct Slot {
    _permit: OwnedSemaphorePermit,
    freed: Arc<Notify>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.freed.notify_one();
    }
}

impl QueueRunner {
    /// Run until `shutdown`; then wait up to `grace` for attempts in flight
    /// and give back the leases of any that did not finish, and of fresh
    /// deliveries not yet started.
    pub async fn run(
        self: Arc<Self>,
        mut fresh: Option<HandoffReceiver>,
        mut shutdown: watch::Receiver<bool>,
        grace: Duration,
    ) {
        let slots = Arc::new(Semaphore::new(self.workers));
        let freed = Arc::new(Notify::new());
        let destinations = Destinations::new(&self.limits, freed.clone());
        // Claims fetch up to twice the workers, and only while what is
        // leased and not started fits in the free slots plus a claim's worth,
        // so one claim (one write) serves many deliveries and leases are not
        // held long before their attempt.
        let capacity = self.workers * 2;
        let mut pending: VecDeque<Leased> = VecDeque::new();
        let mut in_flight = JoinSet::new();
        let mut next_claim = tokio::time::Instant::now();
        while !*shutdown.borrow() {
            while in_flight.try_join_next().is_some() {}
            let busy = self.workers - slots.available_permits();
            let can_claim = pending.len() + busy <= self.workers;
            if can_claim && next_claim <= tokio::time::Instant::now() {
                next_claim = self.claim(capacity - pending.len(), &mut pending).await;
            }
            let mut postponed = Vec::new();
            while in_flight.len() < self.workers * RECORDING_PER_SLOT {
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    break;
                };
                let next =
                    self.next_startable(&destinations, &mut pending, &mut fresh, &mut postponed);
                let Some((leased, destination)) = next else {
                    break;
                };
                let slot = Slot {
                    _permit: permit,
                    freed: freed.clone(),
                };
                let me = self.clone();
                in_flight.spawn(async move { me.attempt(leased, Some(slot), destination).await });
            }
            if !postponed.is_empty() {
                // Claim again when the first of them is due, not at the
                // next poll: they are not due yet while still leased, so
                // the claim that leased them could not see when they are.
                if let Some(soonest) = postponed.iter().map(|(_, wait)| *wait).min() {
                    next_claim = next_claim.min(tokio::time::Instant::now() + soonest);
                }
                let me = self.clone();
                in_flight.spawn(async move { me.postpone(postponed).await });
            }
            let may_start = slots.available_permits() > 0;
            tokio::select! {
                _ = self.wake.notified() => next_claim = tokio::time::Instant::now(),
                _ = tokio::time::sleep_until(next_claim), if can_claim => {}
                _ = freed.notified() => {}
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                Some(d) = recv(&mut fresh), if may_start => pending.push_back(self.fresh(d)),
                _ = shutdown.changed() => {}
            }
        }
        // Fresh deliveries still on their way: refuse more, and wait for the
        // commits that reserved room (their leases are given back below).
        if let Some(rx) = fresh.as_mut() {
            rx.close();
            let _ = tokio::time::timeout(grace, async { while rx.recv().await.is_some() {} }).await;
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

    /// Lease up to `want` due deliveries into `pending`; when to claim next.
    async fn claim(&self, want: usize, pending: &mut VecDeque<Leased>) -> tokio::time::Instant {
        let now = Utc::now();
        let claimed = self
            .storage
            .claim_due(&self.node, now, now + self.lease, want as u32)
            .await;
        let at = Instant::now();
        match claimed {
            Ok(jobs) => {
                let full = jobs.len() == want;
                pending.extend(jobs.into_iter().map(|job| Leased {
                    destination: self.transport.destination(&job.rcpt_email),
                    job,
                    content: None,
                    since: at,
                }));
                if full {
                    tokio::time::Instant::now() // maybe more are due
                } else {
                    tokio::time::Instant::now() + self.until_next_due().await
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim deliveries");
                tokio::time::Instant::now() + STORAGE_BACKOFF
            }
        }
    }

    fn fresh(&self, d: FreshDelivery) -> Leased {
        Leased {
            destination: self.transport.destination(&d.job.rcpt_email),
            job: d.job,
            content: Some(d.content),
            since: d.leased_at,
        }
    }

    /// The first leased delivery that may start, pending ones first, then
    /// fresh ones, with its hold on its destination. On the way, those
    /// whose destination is busy stay pending (one per attempt the
    /// destination may have; the rest go to `postponed` with when to come
    /// back, as do those of a suspended or rate-limited destination), and
    /// those leased too long ago are dropped: their lease lapses and they
    /// are claimed afresh.
    fn next_startable(
        &self,
        destinations: &Arc<Destinations>,
        pending: &mut VecDeque<Leased>,
        fresh: &mut Option<HandoffReceiver>,
        postponed: &mut Vec<(String, Duration)>,
    ) -> Option<(Leased, Option<DestinationPermit>)> {
        let mut waiting: HashMap<String, usize> = HashMap::new();
        let mut i = 0;
        loop {
            let leased = match pending.remove(i) {
                Some(leased) => leased,
                None => self.fresh(fresh.as_mut()?.try_recv().ok()?),
            };
            if leased.since.elapsed() > self.lease / 2 {
                continue;
            }
            let Some(destination) = &leased.destination else {
                return Some((leased, None));
            };
            let waiting = waiting.entry(destination.clone()).or_default();
            match destinations.gate(destination, *waiting) {
                Gate::Go(permit) => return Some((leased, Some(permit))),
                Gate::Wait => {
                    *waiting += 1;
                    pending.insert(i, leased);
                    i += 1;
                }
                Gate::Busy(wait) | Gate::Later(wait) => postponed.push((leased.job.id, wait)),
            }
        }
    }

    /// Give back the leases of deliveries not attempted, each due again
    /// after its wait (rounded up to a tenth of a second, so that those
    /// due together are written together); their attempts are not counted.
    async fn postpone(&self, deliveries: Vec<(String, Duration)>) {
        let now = Utc::now();
        let mut by_wait: BTreeMap<u128, Vec<String>> = BTreeMap::new();
        for (id, wait) in deliveries {
            by_wait
                .entry(wait.as_millis().div_ceil(100) * 100)
                .or_default()
                .push(id);
        }
        for (wait_ms, ids) in by_wait {
            let at = now + chrono::Duration::milliseconds(wait_ms as i64);
            for chunk in ids.chunks(POSTPONED_PER_WRITE) {
                if let Err(e) = self.storage.postpone(&self.node, chunk, at).await {
                    // The leases lapse and the deliveries are claimed again.
                    tracing::warn!(deliveries = chunk.len(), error = %e, "cannot postpone deliveries");
                }
            }
        }
    }

    async fn until_next_due(&self) -> Duration {
        match self.storage.next_due().await {
            Ok(Some(due)) => (due - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .clamp(Duration::from_millis(10), self.poll_interval),
            _ => self.poll_interval,
        }
    }

    /// Attempt `job`, leased to this runner's node, at once and outside
    /// the workers and destination limits, recording the outcome as any
    /// attempt's: what `ct-relay queue retry` does.
    pub async fn attempt_now(&self, job: DeliveryJob) {
        let leased = Leased {
            destination: None,
            job,
            content: None,
            since: Instant::now(),
        };
        self.attempt(leased, None, None).await
    }

    /// Send, give the slot back, then record the outcome.
    async fn attempt(
        &self,
        leased: Leased,
        slot: Option<Slot>,
        destination: Option<DestinationPermit>,
    ) {
        let job = leased.job;
        let content = match leased.content {
            Some(c) => Ok(Some(c)),
            None => self
                .storage
                .message_content(&job.message_id)
                .await
                .map(|c| c.map(Bytes::from)),
        };
        let content = match content {
            Ok(Some(c)) => c,
            Ok(None) => {
                tracing::error!(delivery = %job.id, message_id = %job.message_id, "message content missing");
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
            Some(dkim) => dkim.sign(&content).map(Bytes::from).unwrap_or_else(|e| {
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
        if let Some(permit) = destination {
            permit.ended(&outcome);
        }
        drop(slot);
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
                hard_bounce: None,
            },
            Outcome::Failed { reply } => {
                let reply = redact(&reply, &job.rcpt_email, &job.rcpt_alias);
                let hard_bounce = self.notifier.hard_bounce(job, &reply);
                AttemptRecord {
                    at: now,
                    state: DeliveryState::Failed,
                    reply,
                    next_attempt_at: None,
                    hard_bounce,
                }
            }
            Outcome::Retry { reply } => {
                let reply = redact(&reply, &job.rcpt_email, &job.rcpt_alias);
                match self.policy.after_failure(attempts, job.created_at, now) {
                    Next::RetryAt(at) => AttemptRecord {
                        at: now,
                        state: DeliveryState::Retrying,
                        reply,
                        next_attempt_at: Some(at),
                        hard_bounce: None,
                    },
                    Next::GiveUp => AttemptRecord {
                        at: now,
                        state: DeliveryState::Failed,
                        reply: format!("{reply} (gave up after {attempts} attempts)"),
                        next_attempt_at: None,
                        hard_bounce: None,
                    },
                }
            }
        };
        crate::message_log::delivery(job, attempts, record.state.as_str(), &record.reply);
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
        let dsn = notice
            .as_ref()
            .map(|n| (n.id.clone(), n.delivery_id.clone()));
        match self
            .committer
            .record_attempt(&self.node, &job.id, record, notice)
            .await
        {
            Ok(true) => {
                if let Some((id, delivery)) = &dsn {
                    crate::message_log::dsn(job, (id, delivery));
                }
            }
            Ok(false) => {
                tracing::warn!(delivery = %job.id, "lease lost before the outcome was written")
            }
            Err(e) => {
                tracing::warn!(delivery = %job.id, error = %e, "cannot record attempt; it will be retried")
            }
        }
    }
}

/// The next fresh delivery; never, without a handoff.
async fn recv(fresh: &mut Option<HandoffReceiver>) -> Option<FreshDelivery> {
    match fresh {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
