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
    /// The delivery.
    pub job: DeliveryJob,
    /// The stored message it delivers.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn room_is_reserved_all_or_nothing_and_filled_after_the_commit() {
        let (handoff, mut rx) = channel("node-1", Duration::from_secs(60), 2);
        let now = Utc::now();
        assert!(handoff.reserve(3, now).is_none(), "more than the room");
        assert!(handoff.reserve(0, now).is_none(), "nothing to hand over");
        let reserved = handoff.reserve(2, now).expect("room for two");
        assert_eq!(reserved.lease().owner, "node-1");
        assert_eq!(reserved.lease().until, now + chrono::Duration::seconds(60));
        assert!(handoff.reserve(1, now).is_none(), "the room is taken");
        let m = AcceptedMessage::sample("m", 2);
        let fresh = reserved.deliveries(std::slice::from_ref(&m));
        reserved.hand_over(fresh);
        let first = rx.recv().await.unwrap();
        let second = rx.recv().await.unwrap();
        assert_eq!(
            (first.job.id.as_str(), second.job.id.as_str()),
            ("m-d0", "m-d1")
        );
        assert_eq!(first.job.rcpt_email, "r0@example.com");
        assert_eq!(&first.content[..], b"Subject: x\r\n\r\nbody\r\n");
        assert!(
            handoff.reserve(2, now).is_some(),
            "room again once taken out"
        );
    }

    #[tokio::test]
    async fn a_stopped_runner_takes_nothing() {
        let (handoff, rx) = channel("node-1", Duration::from_secs(60), 2);
        drop(rx);
        assert!(handoff.reserve(1, Utc::now()).is_none());
    }
}
