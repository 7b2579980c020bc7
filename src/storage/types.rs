//! Rows that cross the storage trait.

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

use crate::alias::{MaskMode, Participant, Role};

/// Times in output: RFC 3339, whole seconds, `Z`.
pub fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339_string(*t))
}

/// `rfc3339` of a time that may be missing (skipped when it is).
fn opt_rfc3339<S: Serializer>(
    t: &Option<DateTime<Utc>>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// An alias as the timeline shows it: never the real address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AliasRef {
    /// The alias.
    pub email_alias: String,
    /// Its form.
    pub alias_mask_type: MaskMode,
    /// Its participant's role in the order.
    pub role: Role,
}

impl From<&Participant> for AliasRef {
    fn from(p: &Participant) -> Self {
        Self {
            email_alias: p.alias.clone(),
            alias_mask_type: p.mode,
            role: p.role,
        }
    }
}

/// One order's copy of an accepted message, ready to commit.
#[derive(Debug, Clone)]
pub struct AcceptedMessage {
    /// The message's id (also its queue id and timeline entry's).
    pub id: String,
    /// The SMTP transaction's id, given in `250 … queued as <id>`.
    pub queue_id: String,
    /// The store.
    pub store: String,
    /// The order.
    pub order: String,
    /// When it was accepted.
    pub received_at: DateTime<Utc>,
    /// The envelope sender as received (may be empty: null sender).
    pub return_path: String,
    /// The masked message bytes.
    pub content: Bytes,
    /// Contacts met on this message, inserted if new.
    pub new_participants: Vec<Participant>,
    /// What its timeline entry shows.
    pub entry: TimelineSummary,
    /// One delivery per recipient of this order.
    pub deliveries: Vec<NewDelivery>,
    /// Set when the deliveries are written already leased, to the node
    /// that accepted the message (see `queue::handoff`).
    pub lease: Option<Lease>,
}

#[cfg(test)]
impl AcceptedMessage {
    /// For unit tests: message `id` of order `o` in store `s`, received now,
    /// with `deliveries` deliveries `{id}-d{i}` to `r{i}@example.com`.
    pub fn sample(id: &str, deliveries: usize) -> Self {
        Self {
            id: id.into(),
            queue_id: id.into(),
            store: "s".into(),
            order: "o".into(),
            received_at: Utc::now(),
            return_path: String::new(),
            content: Bytes::from_static(b"Subject: x\r\n\r\nbody\r\n"),
            new_participants: Vec::new(),
            entry: TimelineSummary::default(),
            deliveries: (0..deliveries)
                .map(|i| NewDelivery {
                    id: format!("{id}-d{i}"),
                    rcpt_alias: format!("a{i}@ct.test"),
                    rcpt_email: format!("r{i}@example.com"),
                    mail_from: String::new(),
                    sender_alias: None,
                })
                .collect(),
            lease: None,
        }
    }
}

/// An order as accepting mail to one of its aliases needs it: every
/// participant, and the store's policy, read in one query at RCPT.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderAtRcpt {
    /// Every participant of the order.
    pub participants: Vec<Participant>,
    /// The store's policy.
    pub policy: crate::policy::StorePolicy,
}

/// A claim on deliveries: who holds it, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The node holding the lease.
    pub owner: String,
    /// When it runs out.
    pub until: DateTime<Utc>,
}

/// One durable write for the group committer.
#[derive(Debug, Clone)]
pub enum Write {
    /// An accepted message's copy for one order, with its deliveries and timeline entry.
    Accept(Box<AcceptedMessage>),
    /// Mail refused at the door (e.g. to an ended alias), for the timeline.
    Refusal(RefusedEntry),
    /// An attempt's outcome, written only if `node` still holds the lease;
    /// with the notice to the sender when the delivery failed.
    Attempt {
        /// The node that made the attempt.
        node: String,
        /// The delivery.
        delivery_id: String,
        /// What happened.
        record: AttemptRecord,
        /// The notice to the sender, when the delivery failed.
        notice: Option<Box<Notice>>,
    },
    /// A bounce came back: the delivery failed (unless it already had),
    /// whoever holds its lease; with the notice to the sender.
    Bounce {
        /// The delivery the bounce is about.
        delivery_id: String,
        /// What the bounce said.
        record: AttemptRecord,
        /// The notice to the sender.
        notice: Option<Box<Notice>>,
    },
}

impl Write {
    /// True when applying it queues deliveries for the queue runner to
    /// claim (not those already leased on the way in).
    pub fn queues_mail(&self) -> bool {
        match self {
            Write::Accept(m) => m.lease.is_none(),
            Write::Refusal(_) => false,
            Write::Attempt { notice, .. } | Write::Bounce { notice, .. } => notice.is_some(),
        }
    }
}

/// A message the relay itself sends (a delivery status notification to the
/// original sender): stored and queued like mail, from the null sender, and
/// on no timeline.
#[derive(Debug, Clone)]
pub struct Notice {
    /// The message id; its one delivery has `delivery_id`.
    pub id: String,
    /// Its one delivery's id.
    pub delivery_id: String,
    /// The store of the failed delivery's message.
    pub store: String,
    /// Its order.
    pub order: String,
    /// When the notice was made.
    pub at: DateTime<Utc>,
    /// The report (RFC 3464), ready to send.
    pub content: Vec<u8>,
    /// The real address notified: the original envelope sender.
    pub rcpt_email: String,
    /// Shown instead of it (queue listings): the sender's alias or `(sender)`.
    pub rcpt_label: String,
}

/// What the timeline says of a message (aliases only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimelineSummary {
    /// The sender's alias, if it has one.
    pub from: Option<AliasRef>,
    /// The recipients' aliases.
    pub to: Vec<AliasRef>,
    /// The subject, masked.
    pub subject: String,
    /// The start of the text, masked.
    pub first_words: String,
    /// The attachments' names, masked.
    pub attachment_names: Vec<String>,
    /// Sender authentication, when checked.
    pub authentication: Option<AuthSummary>,
    /// What the door marked the copy with: `spam`, `unscanned`, `unverified`.
    pub flags: Vec<String>,
}

/// SPF, DKIM and DMARC of a received message, as RFC 8601 result words
/// (pass, fail, softfail, neutral, none, temperror, permerror).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AuthSummary {
    /// SPF's result word.
    pub spf: String,
    /// DKIM's result word.
    pub dkim: String,
    /// DMARC's result word.
    pub dmarc: String,
}

/// One recipient's delivery of an accepted message, to be queued.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// The delivery's id.
    pub id: String,
    /// The recipient's alias.
    pub rcpt_alias: String,
    /// The real address delivered to.
    pub rcpt_email: String,
    /// The envelope sender used for delivery (a bounce address under alias_domain).
    pub mail_from: String,
    /// The alias the copy comes from (its author's), for the rate limits.
    pub sender_alias: Option<String>,
}

/// A leased delivery, everything a worker needs to attempt it.
#[derive(Debug, Clone)]
pub struct DeliveryJob {
    /// The delivery's id.
    pub id: String,
    /// The message it delivers.
    pub message_id: String,
    /// The recipient's alias.
    pub rcpt_alias: String,
    /// The real address delivered to.
    pub rcpt_email: String,
    /// The envelope sender (the delivery's bounce address).
    pub mail_from: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the delivery was queued.
    pub created_at: DateTime<Utc>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Waiting for its first attempt.
    Queued,
    /// Deferred: tried again later.
    Retrying,
    /// The next hop took it.
    Delivered,
    /// Given up, refused or bounced.
    Failed,
}

impl DeliveryState {
    /// Every state, in the order a delivery can pass through them.
    pub const ALL: [Self; 4] = [Self::Queued, Self::Retrying, Self::Delivered, Self::Failed];

    /// The state's word, as stored and as the timeline shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Retrying => "retrying",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    /// The state named `s`, if any.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => DeliveryState::Queued,
            "retrying" => DeliveryState::Retrying,
            "delivered" => DeliveryState::Delivered,
            "failed" => DeliveryState::Failed,
            _ => return None,
        })
    }
}

/// The outcome of one attempt, as the queue records it. `reply` is already
/// free of real addresses.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// When the attempt ended.
    pub at: DateTime<Utc>,
    /// The delivery's state after it.
    pub state: DeliveryState,
    /// The next hop's reply, redacted.
    pub reply: String,
    /// For `Retrying`: when to try again.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// A failure saying the mailbox does not exist or is disabled: counted
    /// against the recipient participant.
    pub hard_bounce: Option<HardBounce>,
}

/// A hard bounce to count (`bounce::Suppression` says which are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HardBounce {
    /// The enhanced status code (`5.1.1`, `5.1.2`, `5.1.10`, `5.2.1`).
    pub status: String,
    /// How many such failures make the participant undeliverable.
    pub after: u32,
}

/// A delivery as the timeline shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryStatus {
    /// The recipient's alias.
    pub to: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// The last reply, redacted.
    pub last_reply: Option<String>,
    /// When it last changed.
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
}

/// One entry of an order's timeline: a message and what became of it, or
/// mail refused at the door. Aliases only, never a real address.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    /// The entry's id (the message's, for accepted mail); the cursor of pages.
    pub id: String,
    /// When the message arrived.
    #[serde(serialize_with = "rfc3339")]
    pub date: DateTime<Utc>,
    /// The sender's alias.
    pub from: Option<AliasRef>,
    /// The recipients' aliases.
    pub to: Vec<AliasRef>,
    /// The subject, masked.
    pub subject: String,
    /// The start of the text, masked.
    pub first_words: String,
    /// Whether it has attachments.
    pub has_attachment: bool,
    /// The attachments' names, masked.
    pub attachment_names: Vec<String>,
    /// One per recipient.
    pub deliveries: Vec<DeliveryStatus>,
    /// The reply given when the message was refused at the door.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// Why it was refused, machine-readable (`unauthenticated_store`,
    /// `spam`, `virus`, `bulk`, `attachment`, `blocked`, `dmarc`,
    /// `ended_alias`, `undeliverable`); for an event, the status that
    /// decided it (`5.1.1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the door marked an accepted message with: `spam` (rspamd said
    /// so and the store marks), `unscanned` (the scanner gave no verdict),
    /// `unverified` (it claimed a participant's address without
    /// authenticating for it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// Who sent it, as checked on arrival (SPF, DKIM, DMARC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication: Option<AuthSummary>,
    /// For an entry about the order rather than a message: what happened
    /// (`participant.undeliverable`, with the participant in `to` and the
    /// status that decided it in `reason`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// A refusal: how many times the same sender was refused for the same
    /// recipients within the hour after `date` (1: once).
    pub repeats: u32,
    /// A refusal repeated: when it was last refused.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_rfc3339"
    )]
    pub last: Option<DateTime<Utc>>,
}

/// A timeline entry for mail that was refused, so the order shows it.
#[derive(Debug, Clone)]
pub struct RefusedEntry {
    /// The entry's id.
    pub id: String,
    /// The store.
    pub store: String,
    /// The order.
    pub order: String,
    /// When it was refused.
    pub at: DateTime<Utc>,
    /// The sender's alias, if it has one.
    pub from: Option<AliasRef>,
    /// The recipients' aliases.
    pub to: Vec<AliasRef>,
    /// The reply the client got, e.g. "550 5.1.1 …".
    pub reply: String,
    /// Why (`policy::Reason`).
    pub reason: String,
    /// The refused message's subject, masked; empty when refused before
    /// DATA.
    pub subject: String,
}

/// What an order event does to the order's aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderExpiry {
    /// End no later than this (invoiced, canceled).
    NoLaterThan(DateTime<Utc>),
    /// Work until exactly this (reopened).
    Until(DateTime<Utc>),
}

/// A line of `ct-relay queue list`.
#[derive(Debug, Clone, Serialize)]
pub struct QueueEntry {
    /// The delivery's id.
    pub id: String,
    /// Its message.
    pub message_id: String,
    /// The message's store.
    pub store: String,
    /// The message's order.
    pub order: String,
    /// The alias of the participant the copy came from (none: not one).
    pub from: Option<String>,
    /// The recipient's alias.
    pub to: String,
    /// When the message was accepted.
    #[serde(serialize_with = "rfc3339")]
    pub received_at: DateTime<Utc>,
    /// Since when an operator holds it (`queue hold`); not attempted then.
    #[serde(serialize_with = "opt_rfc3339")]
    pub held_at: Option<DateTime<Utc>>,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// When it is due.
    #[serde(serialize_with = "rfc3339")]
    pub next_attempt_at: DateTime<Utc>,
    /// The last reply, redacted.
    pub last_reply: Option<String>,
    /// The node holding its lease, if one does.
    pub leased_by: Option<String>,
}

impl QueueEntry {
    /// Its state as an operator reads it: `held` while an operator holds
    /// it (`queue hold`), else the delivery's state.
    pub fn shown_state(&self) -> &'static str {
        match self.held_at {
            Some(_) => "held",
            None => self.state.as_str(),
        }
    }
}

/// A store as `ct-relay store show` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct StoreSummary {
    /// The store.
    pub store: String,
    /// The form of aliases created from now on.
    pub mask_mode: MaskMode,
    /// False when the store was never configured (mode is the default).
    pub configured: bool,
    /// Where the store's timeline events go, if anywhere.
    pub webhook_url: Option<String>,
    /// Its aliases.
    pub aliases: u64,
    /// Its orders.
    pub orders: u64,
}

/// `t` as RFC 3339, whole seconds, `Z`.
pub fn rfc3339_string(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Rows removed by one purge batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PurgeCounts {
    /// Aliases deleted.
    pub aliases: u64,
    /// Messages deleted (with their deliveries and entries).
    pub messages: u64,
    /// Timeline entries without a message (refusals).
    pub entries: u64,
    /// Webhook events deleted.
    pub webhook_events: u64,
    /// Messages of erased people whose text was deleted once their last
    /// delivery ended.
    pub erased_messages: u64,
    /// Orders on legal hold, whose data was kept whatever its age.
    pub held_orders: u64,
}

impl PurgeCounts {
    /// True when nothing was deleted.
    pub fn is_empty(&self) -> bool {
        self.aliases == 0
            && self.messages == 0
            && self.entries == 0
            && self.webhook_events == 0
            && self.erased_messages == 0
    }
}

/// A message as stored: the masked bytes and where they belong.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    /// The store.
    pub store: String,
    /// The order.
    pub order: String,
    /// The envelope sender as received (empty: the null sender).
    pub return_path: String,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// The masked message (empty once erased).
    pub content: Vec<u8>,
    /// Its text was deleted because a person in it was erased.
    pub erased: bool,
}
