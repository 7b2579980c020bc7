//! One order's copy of an accepted message: its new contacts, the masked
//! content with the relay's trace fields, its timeline entry and its
//! deliveries, ready to commit.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ulid::Ulid;

use super::{Acceptor, Peer, MAX_NEW_CONTACTS};
use crate::alias::{MaskMode, Participant, Role};
use crate::masking::{self, AliasMap, Masker, Parsed, REPLY_FIELDS};
use crate::policy::{self, Admitted};
use crate::sender_auth::Checked;
use crate::smtp::Refusal;
use crate::storage::{AcceptedMessage, AliasRef, NewDelivery, OrderAtRcpt, TimelineSummary};

/// What one order's copy is made from, besides the message.
pub(super) struct CopyOf<'a> {
    pub id: &'a str,
    pub queue_id: &'a str,
    pub helo: &'a str,
    pub mail_from: &'a str,
    pub peer: &'a Peer,
    pub auth: Option<&'a Checked<'a>>,
    pub now: DateTime<Utc>,
}

impl Acceptor {
    /// The masked copy with the relay's ARC set on top, when a key is
    /// configured and the sender was checked; unsealed (and logged) if
    /// sealing fails, as a DKIM signature that cannot be made.
    fn sealed(&self, content: Vec<u8>, auth: Option<&Checked<'_>>) -> Vec<u8> {
        let (Some(sealing), Some(auth)) = (&self.arc_sealing, auth) else {
            return content;
        };
        match sealing.seal(&content, &auth.arc_results, auth.arc_chain_passed) {
            Ok(sealed) => sealed,
            Err(e) => {
                tracing::warn!(error = %e, "cannot ARC-seal; the copy goes unsealed");
                content
            }
        }
    }

    pub(super) fn for_order(
        &self,
        copy: &CopyOf<'_>,
        parsed: &Parsed<'_>,
        group: OrderRecipients,
        admitted: Admitted,
    ) -> Result<AcceptedMessage, Refusal> {
        let OrderRecipients {
            recipients,
            order: at_rcpt,
        } = group;
        let mut people = Participants::new(at_rcpt.participants.clone());
        let (store, order) = (recipients[0].store.clone(), recipients[0].order.clone());
        let now = copy.now;
        let mut new_participants = Vec::new();

        // A participant's address claimed without authenticating for it goes
        // out under a contact alias of its own (a contact's claims keep the
        // contact's alias, flagged): the copy never looks like theirs.
        for claim in admitted.claims.iter().filter(|c| c.unverified()) {
            let Some(alias) = &claim.alias else { continue };
            if !people.has_alias(alias) {
                match self.aliaser.participant(
                    &store,
                    &order,
                    Role::Contact,
                    &claim.address,
                    MaskMode::Hard,
                    now,
                ) {
                    Ok(p) => {
                        tracing::info!(alias = %p.alias, order = %order, "unverified claim of a participant's address: new contact");
                        people.add(p.clone());
                        new_participants.push(p);
                    }
                    Err(_) => continue,
                }
            }
            people.route(&claim.address, alias);
        }

        // Whoever wrote the message, and whoever its replies, receipts and
        // bounces go to, becomes a contact if not yet a participant, so
        // that all of those come back through the relay.
        let mut senders = masking::addresses(&parsed.fields, REPLY_FIELDS);
        if senders.is_empty() && !copy.mail_from.is_empty() {
            senders.push(masking::canonical(copy.mail_from));
        }
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
        let mut trace = self.received_field(copy, for_rcpt);
        if let Some(a) = copy.auth {
            trace.push_str(&a.field);
        }
        if let Some(score) = admitted.marks.spam {
            trace.push_str(&format!("X-Spam: Yes\r\nX-Spam-Score: {score:.2}\r\n"));
        }
        let masked_id = |id: &str| self.masked_message_id(id);
        let masker = Masker {
            aliases: &aliases,
            masked_id: &masked_id,
            authserv_id: &self.hostname,
            drop_arc: self.arc_sealing.is_some() && copy.auth.is_some_and(|a| !a.arc_chain_passed),
        };
        let masked = masking::mask(parsed, &masker, trace.as_bytes());
        crate::telemetry::header_masking(&masked.report);
        let content = self.sealed(masked.content, copy.auth);
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
            .or_else(|| (!copy.mail_from.is_empty()).then(|| masking::canonical(copy.mail_from)));
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
            if copy.mail_from.is_empty() {
                String::new()
            } else {
                self.aliaser.bounce_address(delivery_id, now)
            }
        };
        let sender_alias = admitted.sender_alias().map(str::to_string);
        // The envelope sender is kept for the relay's failure notices: as
        // the participant's alias when it is one of the order's (the notice
        // then goes to the address the participant has at that time), else
        // as received (sealed at rest, and erased with its owner).
        let return_path = match people.find(&masking::canonical(copy.mail_from)) {
            Some(p) if !copy.mail_from.is_empty() => p.alias.clone(),
            _ => copy.mail_from.to_string(),
        };
        let flags = admitted.marks.flags();
        crate::telemetry::policy_marked(&flags);
        Ok(AcceptedMessage {
            id: copy.id.to_string(),
            queue_id: copy.queue_id.to_string(),
            store,
            order,
            received_at: now,
            return_path,
            content: content.into(),
            new_participants,
            entry: TimelineSummary {
                from,
                to: recipients.iter().map(AliasRef::from).collect(),
                subject: summary.subject,
                first_words: summary.first_words,
                attachment_names: summary.attachment_names,
                authentication: copy.auth.map(|a| a.summary.clone()),
                flags,
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
                        sender_alias: sender_alias.clone(),
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

    pub(super) fn can_be_participant(&self, email: &str) -> bool {
        match email.rsplit_once('@') {
            Some((_, domain)) => !self.aliaser.is_alias_domain(domain),
            None => false,
        }
    }

    /// RFC 5321 trace field. Names the alias, never a real address.
    fn received_field(&self, copy: &CopyOf<'_>, rcpt: Option<&str>) -> String {
        let helo = received_from_name(copy.helo);
        let for_part = rcpt.map(|a| format!("\r\n\tfor <{a}>")).unwrap_or_default();
        // RFC 3848: ESMTPS when the message came over TLS.
        let protocol = if copy.peer.tls { "ESMTPS" } else { "ESMTP" };
        format!(
            "Received: from {helo} ([{}])\r\n\tby {} (ct-relay) with {protocol} id {}{for_part};\r\n\t{}\r\n",
            copy.peer.ip,
            self.hostname,
            copy.queue_id,
            copy.now.to_rfc2822()
        )
    }
}

/// The recipients of one order, with the order as read at RCPT.
pub(super) struct OrderRecipients {
    pub recipients: Vec<Participant>,
    pub order: Arc<OrderAtRcpt>,
}

/// Recipients grouped by (store, order), in the order first seen.
pub(super) fn group_by_order(
    recipients: Vec<(Participant, Arc<OrderAtRcpt>)>,
) -> Vec<OrderRecipients> {
    let mut groups: Vec<OrderRecipients> = Vec::new();
    for (r, order) in recipients {
        match groups.iter_mut().find(|g| g.recipients[0].same_order(&r)) {
            Some(g) => g.recipients.push(r),
            None => groups.push(OrderRecipients {
                recipients: vec![r],
                order,
            }),
        }
    }
    groups
}

/// An order's participants, looked up by real address.
pub(super) struct Participants {
    all: Vec<Participant>,
    /// Addresses whose mail this copy sends under another alias than
    /// their participant's (unverified claims): canonical address, alias.
    routed: Vec<(String, String)>,
}

impl Participants {
    pub fn new(all: Vec<Participant>) -> Self {
        Self {
            all,
            routed: Vec::new(),
        }
    }

    fn add(&mut self, p: Participant) {
        self.all.push(p);
    }

    fn has_alias(&self, alias: &str) -> bool {
        self.all.iter().any(|p| p.alias.eq_ignore_ascii_case(alias))
    }

    fn route(&mut self, address: &str, alias: &str) {
        self.routed.push((address.to_string(), alias.to_string()));
    }

    /// The alias that stands for `email` in this copy: a routed one, else
    /// the order's best (`policy::best_participant`).
    pub fn find(&self, email: &str) -> Option<&Participant> {
        let email = masking::canonical(email);
        if let Some((_, alias)) = self.routed.iter().find(|(a, _)| *a == email) {
            return self
                .all
                .iter()
                .find(|p| p.alias.eq_ignore_ascii_case(alias));
        }
        policy::best_participant(&self.all, &email, Utc::now())
    }

    /// Every known real address of the order, expired ones too: an alias that
    /// no longer works is still better than a leaked address.
    pub fn alias_map(&self) -> AliasMap {
        let mut map = AliasMap::new();
        for p in &self.all {
            if let Some(best) = self.find(&p.email) {
                map.insert(&p.email, &best.alias);
            }
        }
        map
    }
}

/// What a Received field may say the client called itself: its EHLO
/// argument when that is a host name or an address literal, else
/// `[unknown]`. Anything else a client sends there (`EHLO buyer@example.com`)
/// would be copied into every masked message.
pub(crate) fn received_from_name(helo: &str) -> &str {
    let host = helo.strip_suffix('.').unwrap_or(helo);
    let is_host = host.len() <= 253 && crate::alias::is_ascii_domain(host);
    let is_literal = helo
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .is_some_and(|inner| match inner.strip_prefix("IPv6:") {
            Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => inner.parse::<std::net::Ipv4Addr>().is_ok(),
        });
    if is_host || is_literal {
        helo
    } else {
        "[unknown]"
    }
}

#[cfg(test)]
mod tests {
    use super::received_from_name;

    #[test]
    fn only_host_names_and_address_literals_reach_received() {
        for kept in [
            "mail.acme-store.com",
            "localhost",
            "mx1.example.net.",
            "[192.0.2.7]",
            "[IPv6:2001:db8::1]",
            "xn--loja-acm-t1a.com.br",
        ] {
            assert_eq!(received_from_name(kept), kept);
        }
        for replaced in [
            "buyer@example.com",
            "",
            "-bad.example",
            "bad-.example",
            "a..b",
            "[999.1.1.1]",
            "[IPv6:nonsense]",
            "[buyer@example.com]",
            "host name",
            "lojá.com.br",
            &"a".repeat(64),
        ] {
            assert_eq!(received_from_name(replaced), "[unknown]", "{replaced:?}");
        }
    }
}
