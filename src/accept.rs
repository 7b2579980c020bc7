//! From SMTP transaction to durable queue: checks recipients at RCPT, and after
//! DATA masks the message once per order and commits it (DESIGN.md section 3).
//! Knows nothing of sockets; the connection calls it.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ulid::Ulid;

use crate::alias::{Aliaser, MaskMode, Participant, Role, TagCheck};
use crate::bounce::Notifier;
use crate::masking::{self, AliasMap, Masker, Parsed, REPLY_FIELDS};
use crate::queue::Handoff;
use crate::sender_auth::{Checked, SenderAuth};
use crate::smtp::{Envelope, Refusal, Reply, Verdict};
use crate::storage::{
    AcceptedMessage, AliasRef, Committer, NewDelivery, RefusedEntry, Storage, TimelineSummary,
    Write,
};

/// RFC 5321 6.3: a message with more trace fields than this is looping.
pub const MAX_RECEIVED: usize = 50;
/// The longest header field taken, folded lines included, and the largest
/// header.
pub const MAX_HEADER_FIELD: usize = 32 * 1024;
pub const MAX_HEADER: usize = 256 * 1024;
/// The most a field's encoded words may make mail-parser read. It reads
/// from each `=?` to the next `?=`, so a field of starts that never end
/// costs starts × length (2.2 s for 144 KiB), and every field is parsed for
/// masking and the timeline, once per order. Well-formed words read their
/// own length: at most the field's.
pub const MAX_WORD_READING: usize = 2 * MAX_HEADER_FIELD;

/// New contacts one message may add to an order: the senders and reply
/// addresses of real order mail are a handful. Addresses past it are no
/// participants; their mail is masked for the participants it names.
pub const MAX_NEW_CONTACTS: usize = 16;

fn header_too_big(parsed: &Parsed<'_>) -> bool {
    parsed.header_len() > MAX_HEADER
        || parsed.longest_entry() > MAX_HEADER_FIELD
        || parsed
            .fields
            .iter()
            .map(|f| f.raw)
            .chain(parsed.dropped.iter().copied())
            .any(|raw| word_reading(raw) > MAX_WORD_READING)
}

/// The bytes from each `=?` in `raw` to the end of the next `?=` after it,
/// or to the end of `raw`, added up. Linear: each terminator is looked for
/// once.
fn word_reading(raw: &[u8]) -> usize {
    let mut total = 0;
    let mut word_end = 0;
    for start in memchr::memmem::find_iter(raw, b"=?") {
        if word_end < start + 4 {
            word_end = memchr::memmem::find(&raw[start + 2..], b"?=")
                .map_or(raw.len(), |p| start + 2 + p + 2);
        }
        total += word_end - start;
    }
    total
}

/// What an accepted RCPT stands for.
#[derive(Debug, Clone)]
pub enum Recipient {
    /// An active alias, with every participant of its order as they were
    /// at RCPT (masking the message needs them all).
    Alias {
        participant: Participant,
        order: Arc<Vec<Participant>>,
    },
    /// A signed bounce address: a report about this delivery.
    Bounce { delivery_id: String },
}

/// Who is on the other end of the session, for the Received field.
#[derive(Debug, Clone)]
pub struct Peer {
    pub ip: IpAddr,
    /// The session runs over TLS (STARTTLS done).
    pub tls: bool,
}

pub struct Acceptor {
    storage: Arc<dyn Storage>,
    committer: Committer,
    aliaser: Aliaser,
    hostname: String,
    notifier: Notifier,
    /// SPF, DKIM and DMARC of incoming mail, when `auth.check` is on.
    sender_auth: Option<SenderAuth>,
    /// This node's queue runner, for fresh mail.
    handoff: Option<Handoff>,
}

impl Acceptor {
    pub fn new(
        storage: Arc<dyn Storage>,
        committer: Committer,
        aliaser: Aliaser,
        hostname: &str,
        sender_auth: Option<SenderAuth>,
    ) -> Self {
        Self {
            sender_auth,
            notifier: Notifier::new(storage.clone(), hostname, aliaser.domain()),
            storage,
            committer,
            aliaser,
            hostname: hostname.to_string(),
            handoff: None,
        }
    }

    /// Pass accepted mail to this node's queue runner directly, when it has
    /// room (see `queue::handoff`).
    pub fn with_handoff(mut self, handoff: Handoff) -> Self {
        self.handoff = Some(handoff);
        self
    }

    /// The RCPT decision. The tag is checked before the database is read, so
    /// guessed addresses cost no query. Mail to an alias that existed but has
    /// ended (expired, disabled) is put on its order's timeline as refused.
    /// A bounce address is accepted on its tag alone (forged and stale ones
    /// fail it).
    pub async fn check_recipient(&self, address: &str, mail_from: &str) -> Verdict<Recipient> {
        let key = match self.aliaser.check(address) {
            TagCheck::Foreign => return Verdict::Relaying,
            TagCheck::Invalid => {
                tracing::debug!(rcpt = %address, "alias tag does not verify");
                return Verdict::Unknown;
            }
            TagCheck::Bounce { delivery_id } => {
                return Verdict::Accept(Recipient::Bounce { delivery_id })
            }
            TagCheck::Valid { key, .. } => key,
        };
        match self.storage.find_alias_with_order(&key).await {
            Ok(Some((p, order))) if p.is_active(Utc::now()) => Verdict::Accept(Recipient::Alias {
                participant: p,
                order: Arc::new(order),
            }),
            Ok(Some((ended, _))) => {
                tracing::info!(alias = %ended.alias, "mail to an ended alias refused");
                let reply = Reply::unknown_alias().to_string();
                self.record_refusal(std::slice::from_ref(&ended), mail_from, reply)
                    .await;
                Verdict::Unknown
            }
            Ok(None) => Verdict::Unknown,
            Err(e) => {
                tracing::warn!(error = %e, "recipient lookup failed");
                Verdict::TemporaryFailure
            }
        }
    }

    /// Put mail refused with `reply` on the timeline of the order of `to`
    /// (recipients of one order).
    async fn record_refusal(&self, to: &[Participant], mail_from: &str, reply: String) {
        let order = &to[0];
        let from = match self
            .storage
            .order_participants(&order.store, &order.order)
            .await
        {
            Ok(known) => Participants::new(known).find(mail_from).map(AliasRef::from),
            Err(_) => None,
        };
        let entry = RefusedEntry {
            id: Ulid::new().to_string(),
            store: order.store.clone(),
            order: order.order.clone(),
            at: Utc::now(),
            from,
            to: to.iter().map(AliasRef::from).collect(),
            reply: reply.trim_end().to_string(),
        };
        if let Err(e) = self.committer.record_refusal(entry).await {
            tracing::warn!(error = %e, "could not put the refusal on the timeline");
        }
    }

    /// Mask and commit. `Ok` carries the queue id, given only once durable.
    pub async fn accept(&self, env: Envelope<Recipient>, peer: &Peer) -> Result<String, Refusal> {
        let parsed = Parsed::new(&env.body);
        if header_too_big(&parsed) {
            return Err(Refusal::HeaderTooBig);
        }
        if parsed.count("received") > MAX_RECEIVED {
            return Err(Refusal::MailLoop);
        }
        let queue_id = Ulid::new().to_string();
        let now = Utc::now();
        let mut aliases = Vec::new();
        let mut bounces = Vec::new();
        for r in env.recipients {
            match r {
                Recipient::Alias { participant, order } => aliases.push((participant, order)),
                Recipient::Bounce { delivery_id } => bounces.push(delivery_id),
            }
        }
        // An alias standing for an address under the alias domain would send
        // the message straight back here. None can be made, but a row from
        // before an alias.domain change could: refuse rather than loop.
        if let Some((p, _)) = aliases
            .iter()
            .find(|(p, _)| !self.can_be_participant(&p.email))
        {
            tracing::warn!(alias = %p.alias, "alias delivers back to the alias domain; refused as a loop");
            return Err(Refusal::MailLoop);
        }
        let mut writes = if bounces.is_empty() {
            Vec::new()
        } else {
            self.notifier
                .bounce_writes(&bounces, &env.body, now)
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "bounce lookup failed");
                    Refusal::StorageUnavailable
                })?
        };
        let auth = match &self.sender_auth {
            Some(checker) if !aliases.is_empty() => Some(
                checker
                    .check(&env.body, peer.ip, &env.helo, &env.mail_from)
                    .await,
            ),
            _ => None,
        };
        if let Some(domain) = auth.as_ref().and_then(|a| a.reject.as_deref()) {
            tracing::info!(queue_id = %queue_id, dmarc_domain = %domain, "refused by the sender domain's DMARC policy");
            for group in group_by_order(aliases) {
                let reply = Reply::dmarc_reject().to_string();
                self.record_refusal(&group.recipients, &env.mail_from, reply)
                    .await;
            }
            return Err(Refusal::DmarcReject);
        }
        let mut messages = Vec::new();
        for (i, group) in group_by_order(aliases).into_iter().enumerate() {
            // The first order's copy carries the queue id, so a single-order
            // message has one id everywhere.
            let id = if i == 0 {
                queue_id.clone()
            } else {
                Ulid::new().to_string()
            };
            let message = self
                .for_order(
                    &id,
                    &queue_id,
                    &env.helo,
                    &env.mail_from,
                    &parsed,
                    group,
                    peer,
                    auth.as_ref(),
                    now,
                )
                .await?;
            messages.push(message);
        }
        let count = messages.len();
        let deliveries = messages.iter().map(|m| m.deliveries.len()).sum();
        let handoff = self
            .handoff
            .as_ref()
            .and_then(|h| h.reserve(deliveries, now));
        let fresh = match &handoff {
            Some(reserved) => {
                for m in &mut messages {
                    m.lease = Some(reserved.lease().clone());
                }
                reserved.deliveries(&messages)
            }
            None => Vec::new(),
        };
        writes.extend(messages.into_iter().map(|m| Write::Accept(Box::new(m))));
        if writes.is_empty() {
            // Only a report that changes nothing (a delay warning, an auto-reply).
            return Ok(queue_id);
        }
        match self.committer.submit(writes).await {
            Ok(_) => {
                if let Some(reserved) = handoff {
                    reserved.hand_over(fresh);
                }
                tracing::info!(queue_id = %queue_id, orders = count, size = env.body.len(), "accepted");
                crate::telemetry::accepted();
                Ok(queue_id)
            }
            Err(e) => {
                tracing::warn!(error = %e, "commit failed; answering 451");
                Err(Refusal::StorageUnavailable)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn for_order(
        &self,
        id: &str,
        queue_id: &str,
        helo: &str,
        mail_from: &str,
        parsed: &Parsed<'_>,
        group: OrderRecipients,
        peer: &Peer,
        auth: Option<&Checked>,
        now: DateTime<Utc>,
    ) -> Result<AcceptedMessage, Refusal> {
        let OrderRecipients {
            recipients,
            participants,
        } = group;
        let (store, order) = (recipients[0].store.clone(), recipients[0].order.clone());
        let mut people = Participants::new(participants.as_ref().clone());

        // Whoever wrote the message, and whoever its replies, receipts and
        // bounces go to, becomes a contact if not yet a participant, so
        // that all of those come back through the relay.
        let mut senders = masking::addresses(&parsed.fields, REPLY_FIELDS);
        if senders.is_empty() && !mail_from.is_empty() {
            senders.push(masking::canonical(mail_from));
        }
        let mut new_participants = Vec::new();
        for email in &senders {
            if people.find(email).is_some() || !self.can_be_participant(email) {
                continue;
            }
            if new_participants.len() == MAX_NEW_CONTACTS {
                tracing::info!(order = %order, "more reply addresses than contacts a message may add");
                break;
            }
            match self.aliaser.participant(
                &store,
                &order,
                Role::Contact,
                email,
                MaskMode::Hard,
                now,
            ) {
                Ok(p) => {
                    tracing::info!(alias = %p.alias, order = %order, "new contact");
                    people.add(p.clone());
                    new_participants.push(p);
                }
                Err(e) => tracing::debug!(error = %e, "sender cannot become a contact"),
            }
        }

        let aliases = people.alias_map();
        let for_rcpt = (recipients.len() == 1).then(|| recipients[0].alias.as_str());
        let mut trace = self.received_field(helo, peer, queue_id, for_rcpt, now);
        if let Some(a) = auth {
            trace.push_str(&a.field);
        }
        let masked_id = |id: &str| self.masked_message_id(id);
        let masker = Masker {
            aliases: &aliases,
            masked_id: &masked_id,
            authserv_id: &self.hostname,
        };
        let masked = masking::mask(parsed, &masker, trace.as_bytes());
        crate::telemetry::header_masking(&masked.report);
        let content = masked.content;
        let summary = masking::summarize(&content, &aliases, self.aliaser.domain());

        // The timeline names the author: From's first address, else Sender's,
        // else the envelope sender.
        let author = ["from", "sender"]
            .iter()
            .find_map(|name| {
                masking::addresses(&parsed.fields, &[name])
                    .into_iter()
                    .next()
            })
            .or_else(|| (!mail_from.is_empty()).then(|| masking::canonical(mail_from)));
        let from = author
            .as_deref()
            .and_then(|s| people.find(s))
            .map(AliasRef::from);
        let mut seen = HashSet::new();
        let recipients: Vec<Participant> = recipients
            .into_iter()
            .filter(|r| seen.insert(r.key()))
            .collect();
        // Each delivery's envelope sender is its own signed bounce address;
        // mail from the null sender goes on from the null sender, so a
        // bounce is never answered by another.
        let bounce_for = |delivery_id: &str| {
            if mail_from.is_empty() {
                String::new()
            } else {
                self.aliaser.bounce_address(delivery_id, now)
            }
        };
        Ok(AcceptedMessage {
            id: id.to_string(),
            queue_id: queue_id.to_string(),
            store,
            order,
            received_at: now,
            return_path: mail_from.to_string(),
            content: content.into(),
            new_participants,
            entry: TimelineSummary {
                from,
                to: recipients.iter().map(AliasRef::from).collect(),
                subject: summary.subject,
                first_words: summary.first_words,
                attachment_names: summary.attachment_names,
                authentication: auth.map(|a| a.summary.clone()),
            },
            deliveries: recipients
                .iter()
                .map(|r| {
                    let id = Ulid::new().to_string();
                    NewDelivery {
                        mail_from: bounce_for(&id),
                        id,
                        rcpt_alias: r.alias.clone(),
                        rcpt_email: r.email.clone(),
                    }
                })
                .collect(),
            lease: None,
        })
    }

    /// A message id for `id`, which holds a participant's address: a keyed
    /// hash of the id under the alias domain, the same on every node.
    fn masked_message_id(&self, id: &str) -> String {
        let hash = self.aliaser.sign("ct-message-id-v1", &[id]);
        format!("m.{}@{}", &hash[..32], self.aliaser.domain())
    }

    fn can_be_participant(&self, email: &str) -> bool {
        match email.rsplit_once('@') {
            Some((_, domain)) => !self.aliaser.is_alias_domain(domain),
            None => false,
        }
    }

    /// RFC 5321 trace field. Names the alias, never a real address.
    fn received_field(
        &self,
        helo: &str,
        peer: &Peer,
        queue_id: &str,
        rcpt: Option<&str>,
        now: DateTime<Utc>,
    ) -> String {
        let helo: String = helo
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(255)
            .collect();
        let for_part = rcpt.map(|a| format!("\r\n\tfor <{a}>")).unwrap_or_default();
        // RFC 3848: ESMTPS when the message came over TLS.
        let protocol = if peer.tls { "ESMTPS" } else { "ESMTP" };
        format!(
            "Received: from {helo} ([{}])\r\n\tby {} (ct-relay) with {protocol} id {queue_id}{for_part};\r\n\t{}\r\n",
            peer.ip,
            self.hostname,
            now.to_rfc2822()
        )
    }
}

/// The recipients of one order, with the order's participants as read at
/// RCPT.
struct OrderRecipients {
    recipients: Vec<Participant>,
    participants: Arc<Vec<Participant>>,
}

/// Recipients grouped by (store, order), in the order first seen.
fn group_by_order(recipients: Vec<(Participant, Arc<Vec<Participant>>)>) -> Vec<OrderRecipients> {
    let mut groups: Vec<OrderRecipients> = Vec::new();
    for (r, participants) in recipients {
        match groups.iter_mut().find(|g| g.recipients[0].same_order(&r)) {
            Some(g) => g.recipients.push(r),
            None => groups.push(OrderRecipients {
                recipients: vec![r],
                participants,
            }),
        }
    }
    groups
}

/// An order's participants, looked up by real address.
struct Participants {
    all: Vec<Participant>,
}

impl Participants {
    fn new(all: Vec<Participant>) -> Self {
        Self { all }
    }

    fn add(&mut self, p: Participant) {
        self.all.push(p);
    }

    /// The alias that stands for `email`: an active one if any, the newest first.
    fn find(&self, email: &str) -> Option<&Participant> {
        let now = Utc::now();
        self.all
            .iter()
            .filter(|p| masking::canonical(&p.email) == masking::canonical(email))
            .max_by_key(|p| (p.is_active(now), p.created_at, p.mode == MaskMode::Hard))
    }

    /// Every known real address of the order, expired ones too: an alias that
    /// no longer works is still better than a leaked address.
    fn alias_map(&self) -> AliasMap {
        let mut map = AliasMap::new();
        for p in &self.all {
            if let Some(best) = self.find(&p.email) {
                map.insert(&p.email, &best.alias);
            }
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_that_end_read_their_length_and_starts_that_do_not_read_to_the_end() {
        assert_eq!(word_reading(b"Subject: plain"), 0);
        // Two words of 9 bytes each.
        assert_eq!(word_reading(b" =?a?q?b?= =?a?q?c?=\r\n"), 18);
        // Two starts reading to the one terminator: 20 + 11.
        assert_eq!(word_reading(b"=?ab?q?x =?ab?q?y ?="), 20 + 11);
        // Starts with no terminator read to the end: 10 + 4.
        assert_eq!(word_reading(b"=?ab?q=?bc"), 10 + 4);
    }
}
