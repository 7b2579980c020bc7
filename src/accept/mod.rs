//! From SMTP transaction to durable queue: checks recipients at RCPT, and
//! after DATA runs the policy stage, masks the message once per order
//! (`order`) and commits it. Knows nothing of sockets; the connection
//! calls it.

mod order;
pub(crate) use order::received_from_name;

use std::net::IpAddr;
use std::sync::Arc;

use chrono::Utc;
use ulid::Ulid;

use crate::alias::{Aliaser, Participant, TagCheck};
use crate::bounce::Notifier;
use crate::bounce::Suppression;
use crate::delivery::arc::ArcSealing;
use crate::masking::{self, Parsed};
use crate::message_log;
use crate::policy::stage::{Incoming, OrderInput};
use crate::policy::{Claim, Reason, Stage, StageResult};
use crate::queue::Handoff;
use crate::sender_auth::SenderAuth;
use crate::smtp::{Envelope, Refusal, Reply, Verdict};
use crate::storage::{AliasRef, Committer, OrderAtRcpt, RefusedEntry, Storage, Write};

use order::{group_by_order, CopyOf, OrderRecipients, Participants};

/// RFC 5321 6.3: a message with more trace fields than this is looping.
pub const MAX_RECEIVED: usize = 50;
/// The longest header field taken, folded lines included, and the largest
/// header.
pub const MAX_HEADER_FIELD: usize = 32 * 1024;
/// The most header bytes a message may have (`552 5.3.4` past it).
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
    /// An active alias, with every participant of its order and its
    /// store's policy as they were at RCPT (masking the message needs them
    /// all, the policy stage the policy).
    Alias {
        /// The alias's participant.
        participant: Participant,
        /// Every participant of its order, and the store's policy.
        order: Arc<OrderAtRcpt>,
    },
    /// A signed bounce address: a report about this delivery.
    Bounce {
        /// The delivery the report is about.
        delivery_id: String,
    },
}

/// A refusal as the timeline records it.
struct Refused {
    reply: String,
    reason: Reason,
    subject: String,
}

/// Who is on the other end of the session, for the Received field.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The client's address.
    pub ip: IpAddr,
    /// The session runs over TLS (STARTTLS done).
    pub tls: bool,
}

/// Decides what happens to recipients and messages as a session receives them:
/// RCPT checks (the tag first, then the database) and, after DATA, the
/// sender's authentication, the policy stage, masking once per order and the
/// commit. One per listener, shared by its sessions; `server::connection`
/// calls it.
pub struct Acceptor {
    storage: Arc<dyn Storage>,
    committer: Committer,
    aliaser: Aliaser,
    hostname: String,
    notifier: Notifier,
    /// SPF, DKIM and DMARC of incoming mail, when `auth.check` is on.
    sender_auth: Option<SenderAuth>,
    /// The trust rules between "message read" and "commit".
    policy: Stage,
    /// Seals each masked copy (the DKIM key, `dkim.arc`).
    arc_sealing: Option<Arc<ArcSealing>>,
    /// This node's queue runner, for fresh mail.
    handoff: Option<Handoff>,
}

impl Acceptor {
    /// The acceptor of one listener; `daemon::serve` makes it.
    pub fn new(
        storage: Arc<dyn Storage>,
        committer: Committer,
        aliaser: Aliaser,
        hostname: &str,
        sender_auth: Option<SenderAuth>,
        policy: Stage,
    ) -> Self {
        Self {
            sender_auth,
            policy,
            notifier: Notifier::new(storage.clone(), hostname, aliaser.domain()),
            storage,
            committer,
            aliaser,
            hostname: hostname.to_string(),
            handoff: None,
            arc_sealing: None,
        }
    }

    /// Count hard bounces that come back to bounce addresses as
    /// `suppression` says.
    pub fn with_suppression(mut self, suppression: Suppression) -> Self {
        self.notifier = self.notifier.with_suppression(suppression);
        self
    }

    /// Seal every masked copy with the relay's ARC set.
    pub fn with_arc_sealing(mut self, sealing: Arc<ArcSealing>) -> Self {
        self.arc_sealing = Some(sealing);
        self
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
    /// fail it). `may_record` says whether the client may have one more
    /// refusal recorded (its address's rate); when not, the answer is to try
    /// later and nothing is written.
    pub async fn check_recipient(
        &self,
        address: &str,
        mail_from: &str,
        may_record: impl FnOnce() -> bool,
    ) -> Verdict<Recipient> {
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
            Ok(Some((p, order))) if p.is_active(Utc::now()) && !p.undeliverable => {
                Verdict::Accept(Recipient::Alias {
                    participant: p,
                    order: Arc::new(order),
                })
            }
            Ok(Some(_)) if !may_record() => Verdict::Throttled,
            Ok(Some((ended, order))) => {
                // An undeliverable participant's alias reads as unknown,
                // like an ended one: the sender learns nothing more.
                let reason = if ended.is_active(Utc::now()) {
                    Reason::Undeliverable
                } else {
                    Reason::EndedAlias
                };
                message_log::rcpt_refused(
                    &ended.alias,
                    &ended.store,
                    &ended.order,
                    reason.as_str(),
                );
                let from = Participants::new(order.participants)
                    .find(mail_from)
                    .map(AliasRef::from);
                let refusal = Refused {
                    reply: Reply::unknown_alias().to_string(),
                    reason,
                    subject: String::new(),
                };
                self.record_refusal(std::slice::from_ref(&ended), from, &refusal)
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

    /// Put mail refused on the timeline of the order of `to` (recipients of
    /// one order).
    async fn record_refusal(&self, to: &[Participant], from: Option<AliasRef>, refused: &Refused) {
        let order = &to[0];
        let entry = RefusedEntry {
            id: Ulid::new().to_string(),
            store: order.store.clone(),
            order: order.order.clone(),
            at: Utc::now(),
            from,
            to: to.iter().map(AliasRef::from).collect(),
            reply: refused.reply.trim_end().to_string(),
            reason: refused.reason.as_str().to_string(),
            subject: refused.subject.clone(),
        };
        if let Err(e) = self.committer.record_refusal(entry).await {
            tracing::warn!(error = %e, "could not put the refusal on the timeline");
        }
    }

    /// A refusal after DATA, on every order's timeline: the sender was
    /// told for all of them. `claims`, when given, are each order's, as the
    /// policy stage resolved them (the timeline's `from`).
    async fn refuse_after_data(
        &self,
        groups: &[OrderRecipients],
        claims: Option<&[Vec<Claim>]>,
        (body, mail_from): (&[u8], &str),
        reply: &Reply,
        reason: Reason,
    ) {
        crate::telemetry::policy_refused(reason);
        for (i, group) in groups.iter().enumerate() {
            let people = Participants::new(group.order.participants.clone());
            let from = match claims.and_then(|c| c.get(i)).and_then(|c| c.first()) {
                Some(claim) => claim.claimed.as_ref().map(AliasRef::from),
                None => people.find(mail_from).map(AliasRef::from),
            };
            let subject =
                masking::summarize(body, &people.alias_map(), self.aliaser.domain()).subject;
            let refused = Refused {
                reply: reply.to_string(),
                reason,
                subject,
            };
            self.record_refusal(&group.recipients, from, &refused).await;
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
        let groups = group_by_order(aliases);
        if let Some(domain) = auth.as_ref().and_then(|a| a.reject.as_deref()) {
            let reply = Reply::dmarc_reject();
            message_log::refused(
                &queue_id,
                Reason::Dmarc.as_str(),
                reply.to_string().trim_end(),
            );
            tracing::debug!(qid = %queue_id, dmarc_domain = %domain, "the sender domain's DMARC policy is reject");
            self.refuse_after_data(
                &groups,
                None,
                (&env.body, &env.mail_from),
                &reply,
                Reason::Dmarc,
            )
            .await;
            return Err(Refusal::DmarcReject);
        }
        let admitted = if groups.is_empty() {
            Vec::new()
        } else {
            let orders: Vec<OrderInput<'_>> = groups
                .iter()
                .map(|g| OrderInput {
                    recipients: &g.recipients,
                    participants: &g.order.participants,
                    policy: &g.order.policy,
                })
                .collect();
            let incoming = Incoming {
                raw: &env.body,
                header: &parsed,
                ip: peer.ip,
                helo: &env.helo,
                mail_from: &env.mail_from,
                queue_id: &queue_id,
                evidence: auth.as_ref().map(|a| &a.evidence),
            };
            match self.policy.run(&incoming, &orders).await {
                StageResult::Accept(admitted) => admitted,
                StageResult::Refuse {
                    reply,
                    reason,
                    claims,
                } => {
                    message_log::refused(&queue_id, reason.as_str(), reply.to_string().trim_end());
                    self.refuse_after_data(
                        &groups,
                        Some(&claims),
                        (&env.body, &env.mail_from),
                        &reply,
                        reason,
                    )
                    .await;
                    return Err(Refusal::Policy(reply));
                }
                StageResult::Later { reply, reason } => {
                    message_log::deferred(&queue_id, reason.as_str(), reply.to_string().trim_end());
                    crate::telemetry::policy_refused(reason);
                    return Err(Refusal::Policy(reply));
                }
                StageResult::Unavailable => return Err(Refusal::StorageUnavailable),
            }
        };
        let mut messages = Vec::new();
        for (i, (group, admitted)) in groups.into_iter().zip(admitted).enumerate() {
            // The first order's copy carries the queue id, so a single-order
            // message has one id everywhere.
            let id = if i == 0 {
                queue_id.clone()
            } else {
                Ulid::new().to_string()
            };
            let copy = CopyOf {
                id: &id,
                queue_id: &queue_id,
                helo: &env.helo,
                mail_from: &env.mail_from,
                peer,
                auth: auth.as_ref(),
                now,
            };
            messages.push(self.for_order(&copy, &parsed, group, admitted)?);
        }
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
        let received: Vec<message_log::Received> =
            messages.iter().map(message_log::Received::of).collect();
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
                for line in &received {
                    line.log(peer.ip);
                }
                crate::telemetry::accepted();
                Ok(queue_id)
            }
            Err(e) => {
                tracing::warn!(error = %e, "commit failed; answering 451");
                Err(Refusal::StorageUnavailable)
            }
        }
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
