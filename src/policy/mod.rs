//! The policy stage: between "message read" and "commit", one decision per
//! order of a message: accept (with marks), refuse with a reply of the
//! project's trust rules (docs/REFERENCE.md, "Trust at the door"), or come
//! back later. Every refusal is answered before `250`.
//!
//! Each rule is its own module and a pure function: `sender` (no spoofing
//! of participants), `bulk`, `attachments`, `rate` and the scanner's
//! verdict (`scan`). This module runs the ones that need nothing but the
//! message; `stage` brings what the others need from the outside world
//! (stored settings and recent mail, the scanner) and combines the orders'
//! decisions into the one reply a transaction gets.

pub mod attachments;
pub mod blocks;
pub mod bulk;
pub mod rate;
pub mod replies;
pub mod scan;
pub mod sender;
pub mod settings;
pub mod stage;

use chrono::{DateTime, Utc};

use crate::alias::{Participant, Role};
use crate::smtp::Reply;

pub use crate::config::TrustedNetworks;
pub use attachments::AttachmentProblem;
pub use scan::{ScanMeta, ScanOutcome, Scanner};
pub use sender::{Client, Evidence, Outcome, Standing};
pub use settings::{BulkMail, PolicyError, PolicyUpdate, SpamAction, StorePolicy};
pub use stage::{Admitted, Stage, StageResult};

/// Why mail was refused: the timeline's `reason` and the metric's label.
/// Temporary refusals have one too (for the metric) but are not put on the
/// timeline: the sender comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The store's address claimed without authenticating.
    UnauthenticatedStore,
    /// rspamd judged it spam.
    Spam,
    /// Malware was found.
    Virus,
    /// Bulk or list mail to a buyer.
    Bulk,
    /// An attachment of a refused type, or too many or too large.
    Attachment,
    /// The sender is blocked for the order.
    Blocked,
    /// The sender's domain publishes DMARC p=reject and the message fails it.
    Dmarc,
    /// Mail to an alias that has ended (expired, disabled).
    EndedAlias,
    /// Mail to a participant whose mailbox hard-bounced (unknown, disabled).
    Undeliverable,
    /// Temporary: authentication undecided, scanner trouble, greylisting,
    /// a rate limit.
    AuthUndecided,
    /// The scanner gave no verdict.
    ScanFailed,
    /// rspamd asked to come back later.
    Greylisted,
    /// Over a rate limit.
    RateLimited,
}

impl Reason {
    /// The reason's word, as the timeline, webhooks and metrics give it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::UnauthenticatedStore => "unauthenticated_store",
            Reason::Spam => "spam",
            Reason::Virus => "virus",
            Reason::Bulk => "bulk",
            Reason::Attachment => "attachment",
            Reason::Blocked => "blocked",
            Reason::Dmarc => "dmarc",
            Reason::EndedAlias => "ended_alias",
            Reason::Undeliverable => "undeliverable",
            Reason::AuthUndecided => "auth_undecided",
            Reason::ScanFailed => "scan_failed",
            Reason::Greylisted => "greylisted",
            Reason::RateLimited => "rate_limited",
        }
    }
}

/// What the stage says of one order's copy.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Taken, with what the door marked it with.
    Accept(Marks),
    /// `reply` is 5xx: refused for good, and on the timeline.
    Refuse {
        /// The reply to the final `.`.
        reply: Reply,
        /// Why, for the timeline and the metrics.
        reason: Reason,
    },
    /// `reply` is 4xx: try again later; not stored.
    Later {
        /// The reply to the final `.`.
        reply: Reply,
        /// Why, for the metrics.
        reason: Reason,
    },
}

impl Decision {
    /// How bad: accept < later < refuse, so the worst decision among a
    /// message's orders answers for the transaction.
    pub fn severity(&self) -> u8 {
        match self {
            Decision::Accept(_) => 0,
            Decision::Later { .. } => 1,
            Decision::Refuse { .. } => 2,
        }
    }

    fn refuse(reply: Reply, reason: Reason) -> Self {
        Decision::Refuse { reply, reason }
    }
}

/// What an accepted copy carries besides itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Marks {
    /// Addresses (canonical) of participants claimed without
    /// authentication: their mail goes out under a contact alias of its
    /// own, flagged.
    pub unverified: Vec<String>,
    /// rspamd's score when it said spam and the store marks it: an
    /// `X-Spam` field and a flag.
    pub spam: Option<f64>,
    /// The scanner gave no verdict and `scan.on_error = "accept"`.
    pub unscanned: bool,
}

impl Marks {
    /// The timeline's `flags` for the entry.
    pub fn flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        if self.spam.is_some() {
            flags.push("spam".to_string());
        }
        if self.unscanned {
            flags.push("unscanned".to_string());
        }
        if !self.unverified.is_empty() {
            flags.push("unverified".to_string());
        }
        flags
    }
}

/// One address a message claims to come from (From's, then the envelope
/// sender), and what the door made of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// Canonical.
    pub address: String,
    /// The order's participant with that address, if any.
    pub claimed: Option<Participant>,
    /// How the claim stands; `Authenticated` when it claims no participant
    /// (a new contact claims nothing of anyone).
    pub standing: Standing,
    /// The alias the mail goes out under: the claimed participant's when
    /// authenticated, else a contact alias of the address's own.
    pub alias: Option<String>,
    /// The participant the mail comes from, or the one it claims without
    /// authenticating, is blocked for the order.
    pub blocked: bool,
}

impl Claim {
    /// The claim stands for its participant only when authenticated.
    pub fn unverified(&self) -> bool {
        self.claimed.is_some() && self.standing != Standing::Authenticated
    }
}

/// Resolve each address a message claims against the order's
/// participants. `contact_alias` makes the contact alias an address gets
/// (the alias formats are the aliaser's).
pub fn resolve_claims(
    addresses: &[String],
    participants: &[Participant],
    client: &Client<'_>,
    policy: &StorePolicy,
    contact_alias: impl Fn(&str) -> Option<String>,
    now: DateTime<Utc>,
) -> Vec<Claim> {
    let mut claims: Vec<Claim> = Vec::new();
    for address in addresses {
        if claims.iter().any(|c| &c.address == address) {
            continue;
        }
        let claimed = best_participant(participants, address, now).cloned();
        let standing = match &claimed {
            Some(_) => sender::standing(address, client, policy),
            None => Standing::Authenticated,
        };
        let alias = match &claimed {
            Some(p) if standing == Standing::Authenticated || p.role == Role::Contact => {
                Some(p.alias.clone())
            }
            _ => contact_alias(address),
        };
        let is_blocked = |alias: &str| {
            participants
                .iter()
                .any(|p| p.blocked && p.alias.eq_ignore_ascii_case(alias))
        };
        let claimed_blocked =
            standing != Standing::Authenticated && claimed.as_ref().is_some_and(|p| p.blocked);
        let blocked = claimed_blocked || alias.as_deref().is_some_and(is_blocked);
        claims.push(Claim {
            address: address.clone(),
            claimed,
            standing,
            alias,
            blocked,
        });
    }
    claims
}

/// The participant that stands for `address` (canonical): a store or
/// customer before a contact with the same address (the contact may be an
/// unverified claim of theirs), an active one before an ended one, the
/// newest first.
pub fn best_participant<'p>(
    participants: &'p [Participant],
    address: &str,
    now: DateTime<Utc>,
) -> Option<&'p Participant> {
    participants
        .iter()
        .filter(|p| crate::masking::canonical(&p.email) == address)
        .max_by_key(|p| {
            (
                p.is_active(now),
                p.role != Role::Contact,
                p.created_at,
                p.mode == crate::alias::MaskMode::Hard,
            )
        })
}

/// One order's side of a message, as the rules see it.
pub struct OrderCase<'a> {
    /// The store's policy.
    pub policy: &'a StorePolicy,
    /// The recipients of this order.
    pub recipients: &'a [Participant],
    /// The participants' addresses the message claims, and how it stands for each.
    pub claims: &'a [Claim],
}

/// The rules that need nothing but the message, in order: blocked
/// sender, spoofed participant, bulk mail, attachments.
pub fn judge(
    case: &OrderCase<'_>,
    header: &crate::masking::Parsed<'_>,
    mime: Option<&mail_parser::Message<'_>>,
) -> Decision {
    if case.claims.iter().any(|c| c.blocked) {
        return Decision::refuse(replies::blocked(), Reason::Blocked);
    }
    let mut marks = Marks::default();
    for claim in case.claims.iter().filter(|c| c.unverified()) {
        let role = claim.claimed.as_ref().map(|p| p.role);
        match (claim.standing, role) {
            (Standing::Unauthenticated, Some(Role::Store))
                if case.policy.require_authenticated_store =>
            {
                return Decision::refuse(
                    replies::unauthenticated_store(),
                    Reason::UnauthenticatedStore,
                );
            }
            // Undecided for the store or the buyer: their genuine mail
            // would go out under another alias for a DNS hiccup. Later.
            (Standing::Undecided, Some(Role::Store | Role::Customer)) => {
                return Decision::Later {
                    reply: replies::auth_undecided(),
                    reason: Reason::AuthUndecided,
                };
            }
            _ => marks.unverified.push(claim.address.clone()),
        }
    }
    let to_customer = case.recipients.iter().any(|r| r.role == Role::Customer);
    if to_customer && case.policy.bulk_mail == BulkMail::Refuse && bulk::is_bulk(header) {
        return Decision::refuse(replies::bulk(), Reason::Bulk);
    }
    if let Some(mime) = mime {
        if let Some(problem) = attachments::check(mime, &case.policy.attachments) {
            return Decision::refuse(replies::attachment(&problem), Reason::Attachment);
        }
    }
    Decision::Accept(marks)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
