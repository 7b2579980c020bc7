//! Fresh mail goes from acceptance straight to this node's queue runner.
//!
//! When the runner has room, the acceptor writes a message's deliveries
//! already leased to this node, in the same transaction as the message, and
//! after the commit passes them over in memory with the masked content. The
//! runner then needs no claim and no content read for them. The lease is the
//! same one a claim would take: when this process dies, it lapses (or, on the
//! single-node SQLite store, is released at the next start) and the deliveries
//! are claimed again. Room is bounded, so at most `capacity` deliveries wait
//! here, as leased jobs would wait after a claim.

use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::storage::{AcceptedMessage, DeliveryJob, Lease};

/// A leased delivery with the content to send.
pub struct FreshDelivery {
    pub job: DeliveryJob,
    pub content: Bytes,
    /// When the lease was taken.
    pub leased_at: Instant,
}

/// The acceptor's end.
#[derive(Clone)]
pub struct Handoff {
    to_runner: mpsc::Sender<FreshDelivery>,
    node: String,
    lease: Duration,
}

/// The runner's end.
pub type HandoffReceiver = mpsc::Receiver<FreshDelivery>;

/// A handoff for `node`'s runner with room for `capacity` deliveries.
pub fn channel(node: &str, lease: Duration, capacity: usize) -> (Handoff, HandoffReceiver) {
    let (to_runner, rx) = mpsc::channel(capacity.max(1));
    (
        Handoff {
            to_runner,
            node: node.to_string(),
            lease,
        },
        rx,
    )
}

/// Room taken for the deliveries of some messages, and their lease.
pub struct Reserved<'a> {
    permits: mpsc::PermitIterator<'a, FreshDelivery>,
    lease: Lease,
    at: Instant,
}

impl Handoff {
    /// Room for `deliveries`, all or none: none when the runner is busy
    /// enough (the deliveries are then queued unleased and claimed later) or
    /// stopped.
    pub fn reserve(&self, deliveries: usize, now: DateTime<Utc>) -> Option<Reserved<'_>> {
        if deliveries == 0 {
            return None;
        }
        let permits = self.to_runner.try_reserve_many(deliveries).ok()?;
        let until = now + chrono::Duration::from_std(self.lease).ok()?;
        Some(Reserved {
            permits,
            lease: Lease {
                owner: self.node.clone(),
                until,
            },
            at: Instant::now(),
        })
    }
}

impl Reserved<'_> {
    /// The lease to write the deliveries with.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// The deliveries of `messages` as the runner will get them. Made
    /// before the commit, which takes the messages.
    pub fn deliveries(&self, messages: &[AcceptedMessage]) -> Vec<FreshDelivery> {
        messages
            .iter()
            .flat_map(|m| {
                m.deliveries.iter().map(|d| FreshDelivery {
                    job: DeliveryJob {
                        id: d.id.clone(),
                        message_id: m.id.clone(),
                        rcpt_alias: d.rcpt_alias.clone(),
                        rcpt_email: d.rcpt_email.clone(),
                        mail_from: d.mail_from.clone(),
                        attempts: 0,
                        created_at: m.received_at,
                    },
                    content: m.content.clone(),
                    leased_at: self.at,
                })
            })
            .collect()
    }

    /// After the commit: pass the deliveries to the runner.
    pub fn hand_over(self, deliveries: Vec<FreshDelivery>) {
        for (permit, delivery) in self.permits.zip(deliveries) {
            permit.send(delivery);
        }
    }
}
