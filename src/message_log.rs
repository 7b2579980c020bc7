//! One log line per message event, with the same field names everywhere so
//! `journalctl -u ct-relay | grep <id>` tells a message's whole story, as
//! Postfix's queue id does (docs/OPERATIONS.md, "Logs"):
//!
//! - `event`: `received`, `refused`, `deferred`, `rcpt_refused`,
//!   `delivery`, `bounce`, `dsn`;
//! - `qid`: the SMTP transaction's id, the one in `250 2.0.0 … queued as`;
//! - `message_id`: one order's copy of it (the id of `GET /v1/messages/…`;
//!   the first copy's equals `qid`);
//! - `delivery`: one recipient's delivery of a copy;
//! - `store`, `order`, `from`, `to`: aliases and order ids, never a real
//!   address.
//!
//! Every line goes to the target `ct_relay::message`, so a filter such as
//! `RUST_LOG=ct_relay::message=info,warn` keeps exactly these.

use std::net::IpAddr;

use crate::storage::{AcceptedMessage, DeliveryJob};

/// What the `received` line says of one order's copy, taken before the copy
/// goes to the committer and logged once it is durable.
pub struct Received {
    qid: String,
    message_id: String,
    store: String,
    order: String,
    from: Option<String>,
    recipients: usize,
    size: usize,
}

impl Received {
    /// The line's fields, from the copy about to be committed.
    pub fn of(message: &AcceptedMessage) -> Self {
        Self {
            qid: message.queue_id.clone(),
            message_id: message.id.clone(),
            store: message.store.clone(),
            order: message.order.clone(),
            from: message
                .deliveries
                .first()
                .and_then(|d| d.sender_alias.clone()),
            recipients: message.deliveries.len(),
            size: message.content.len(),
        }
    }

    /// Log it: the copy is durable.
    pub fn log(&self, client: IpAddr) {
        tracing::info!(
            target: "ct_relay::message",
            event = "received",
            qid = %self.qid,
            message_id = %self.message_id,
            store = %self.store,
            order = %self.order,
            client = %client,
            from = self.from.as_deref().unwrap_or("-"),
            recipients = self.recipients,
            size = self.size,
            "message received"
        );
    }
}

/// The whole message refused after DATA (policy, DMARC, scanner).
pub fn refused(qid: &str, reason: &str, reply: &str) {
    tracing::info!(target: "ct_relay::message", event = "refused", qid, reason, reply, "message refused");
}

/// The whole message deferred after DATA (`4xx`: rate limit, scanner down).
pub fn deferred(qid: &str, reason: &str, reply: &str) {
    tracing::info!(target: "ct_relay::message", event = "deferred", qid, reason, reply, "message deferred");
}

/// An SMTP command answered 4xx or 5xx: the client, what it called itself
/// (only a host name or address literal; anything else as `[unknown]`, as
/// in Received) and the relay's reply, which names no real address.
pub fn smtp_refused(client: IpAddr, helo: &str, reply: &crate::smtp::Reply) {
    let helo = match helo {
        "" => "-",
        helo => crate::accept::received_from_name(helo),
    };
    tracing::info!(
        target: "ct_relay::message",
        event = "smtp_refused",
        client = %client,
        helo,
        reply = reply.one_line(),
        "SMTP command refused"
    );
}

/// A recipient refused at RCPT (an ended, disabled or undeliverable alias).
pub fn rcpt_refused(alias: &str, store: &str, order: &str, reason: &str) {
    tracing::info!(
        target: "ct_relay::message",
        event = "rcpt_refused",
        to = alias,
        store,
        order,
        reason,
        "recipient refused"
    );
}

/// One delivery attempt and where it left the delivery.
pub fn delivery(job: &DeliveryJob, attempt: u32, state: &str, reply: &str) {
    tracing::info!(
        target: "ct_relay::message",
        event = "delivery",
        message_id = %job.message_id,
        delivery = %job.id,
        to = %job.rcpt_alias,
        attempt,
        state,
        reply,
        "delivery attempt"
    );
}

/// A bounce that came back for a delivery the next hop had taken.
pub fn bounce(job: &DeliveryJob, reply: &str) {
    tracing::info!(
        target: "ct_relay::message",
        event = "bounce",
        message_id = %job.message_id,
        delivery = %job.id,
        to = %job.rcpt_alias,
        reply,
        "bounce received"
    );
}

/// The relay's failure notice (DSN) to the original sender, queued:
/// `notice` is its message id and delivery id.
pub fn dsn(job: &DeliveryJob, notice: (&str, &str)) {
    tracing::info!(
        target: "ct_relay::message",
        event = "dsn",
        message_id = %job.message_id,
        delivery = %job.id,
        dsn_message_id = notice.0,
        dsn_delivery = notice.1,
        "failure notice queued"
    );
}
