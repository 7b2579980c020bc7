//! The stage that runs the rules for a message: each order's claims
//! first (its policy came with its participants at RCPT), then the pure rules (`judge`), the rate limits
//! (recent mail from storage) and the scanner, the costly ones only for
//! copies still accepted. The worst order's decision answers for the
//! transaction: one SMTP reply covers every order of a message.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, Utc};

use crate::alias::{Aliaser, MaskMode, Participant, Role};
use crate::config::{OnScanError, PolicySettings};
use crate::masking::{self, Parsed};
use crate::smtp::Reply;
use crate::storage::Storage;

use super::scan::{self, ScanMeta, ScanOutcome, Scanner};
use super::sender::{approved_sender, Client, Evidence, Standing};
use super::{judge, rate, resolve_claims, Claim, Decision, Marks, OrderCase, Reason};
use super::{StorePolicy, TrustedNetworks};

/// With no per-alias limit, the per-sender count reads this many of the
/// alias's deliveries of the hour at most.
const UNCAPPED: u32 = 100_000;

/// The door between DATA and the commit: runs the trust rules, the rate
/// limits and the scanner for each order of a message and gives the one
/// reply. `accept::Acceptor` calls `run` after DATA.
pub struct Stage {
    storage: Arc<dyn Storage>,
    aliaser: Aliaser,
    scanner: Option<Scanner>,
    on_scan_error: OnScanError,
    trusted: TrustedNetworks,
    limits: PolicySettings,
}

/// The message as the stage sees it.
pub struct Incoming<'a> {
    /// The message as received.
    pub raw: &'a [u8],
    /// Its header, parsed.
    pub header: &'a Parsed<'a>,
    /// The client's address.
    pub ip: IpAddr,
    /// The client's HELO.
    pub helo: &'a str,
    /// As given in MAIL FROM; empty for the null sender.
    pub mail_from: &'a str,
    /// The relay's id for the transaction.
    pub queue_id: &'a str,
    /// SPF and DKIM; `None` when checking is off.
    pub evidence: Option<&'a Evidence>,
}

/// One order of the message, as read at RCPT.
pub struct OrderInput<'a> {
    /// The order's participants the message is addressed to.
    pub recipients: &'a [Participant],
    /// Every participant of the order.
    pub participants: &'a [Participant],
    /// The store's policy.
    pub policy: &'a StorePolicy,
}

/// What an accepted order's copy takes from the stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    /// What the door marked the copy with.
    pub marks: Marks,
    /// From's addresses, then the envelope sender's, resolved.
    pub claims: Vec<Claim>,
}

impl Admitted {
    /// The alias the copy comes from: its author's (From's first address,
    /// else the envelope sender), as the door resolved it.
    pub fn sender_alias(&self) -> Option<&str> {
        self.claims.first().and_then(|c| c.alias.as_deref())
    }
}

/// What the stage says of the whole message.
#[derive(Debug, Clone, PartialEq)]
pub enum StageResult {
    /// One per order, in the order given.
    Accept(Vec<Admitted>),
    /// Refused for good; with each order's claims, for the timeline.
    Refuse {
        /// The reply to the final `.`.
        reply: Reply,
        /// Why.
        reason: Reason,
        /// The claims of each order, for its timeline entry.
        claims: Vec<Vec<Claim>>,
    },
    /// Try again later (`4xx`); not stored.
    Later {
        /// The reply to the final `.`.
        reply: Reply,
        /// Why, for the metrics.
        reason: Reason,
    },
    /// Storage could not be read: `451 4.3.0`.
    Unavailable,
}

struct Case<'a> {
    policy: &'a StorePolicy,
    claims: Vec<Claim>,
    decision: Decision,
}

impl Stage {
    /// A stage over `storage`, with the scanner and limits of the configuration.
    pub fn new(
        storage: Arc<dyn Storage>,
        aliaser: Aliaser,
        scanner: Option<Scanner>,
        on_scan_error: OnScanError,
        trusted: TrustedNetworks,
        limits: PolicySettings,
    ) -> Self {
        Self {
            storage,
            aliaser,
            scanner,
            on_scan_error,
            trusted,
            limits,
        }
    }

    /// Judge `msg` for each of its orders; the worst answer is the message's.
    pub async fn run(&self, msg: &Incoming<'_>, orders: &[OrderInput<'_>]) -> StageResult {
        match self.decide(msg, orders).await {
            Ok(cases) => combine(cases),
            Err(e) => {
                tracing::warn!(queue_id = %msg.queue_id, error = %e, "policy stage could not read storage");
                StageResult::Unavailable
            }
        }
    }

    async fn decide<'o>(
        &self,
        msg: &Incoming<'_>,
        orders: &[OrderInput<'o>],
    ) -> crate::storage::Result<Vec<Case<'o>>> {
        let now = Utc::now();
        let mail_from = if msg.mail_from.is_empty() {
            String::new()
        } else {
            masking::canonical(msg.mail_from)
        };
        let client = Client {
            evidence: msg.evidence,
            trusted: self.trusted.contains(msg.ip),
            mail_from: &mail_from,
        };
        let mut addresses = masking::addresses(&msg.header.fields, &["from"]);
        if !mail_from.is_empty() {
            addresses.push(mail_from.clone());
        }
        let mime = super::attachments::may_have_attachments(msg.header)
            .then(|| crate::mime::parse(msg.raw))
            .flatten();
        let mut cases = Vec::with_capacity(orders.len());
        for order in orders {
            let first = &order.recipients[0];
            let contact_alias = |address: &str| {
                self.aliaser
                    .participant(
                        &first.store,
                        &first.order,
                        Role::Contact,
                        address,
                        MaskMode::Hard,
                        now,
                    )
                    .ok()
                    .map(|p| p.alias)
            };
            let claims = resolve_claims(
                &addresses,
                order.participants,
                &client,
                order.policy,
                contact_alias,
                now,
            );
            let case = OrderCase {
                policy: order.policy,
                recipients: order.recipients,
                claims: &claims,
            };
            let decision = judge(&case, msg.header, mime.as_ref());
            cases.push(Case {
                policy: order.policy,
                claims,
                decision,
            });
        }

        let since = now - Duration::hours(1);
        for (case, order) in cases.iter_mut().zip(orders) {
            if !matches!(case.decision, Decision::Accept(_)) {
                continue;
            }
            let privileged = approved_sender(&client, case.policy)
                || case.claims.iter().any(|c| {
                    c.standing == Standing::Authenticated
                        && c.claimed.as_ref().is_some_and(|p| p.role == Role::Store)
                });
            let limits = rate::limits(&self.limits, privileged);
            if limits == (0, 0) {
                continue;
            }
            let cap = if limits.1 > 0 { limits.1 } else { UNCAPPED };
            let sender = case.claims.first().and_then(|c| c.alias.as_deref());
            for r in order.recipients {
                let recent = self
                    .storage
                    .recent_mail(&r.alias, sender, since, cap)
                    .await?;
                if let Some(d) = rate::judge(recent, limits) {
                    case.decision = d;
                    break;
                }
            }
        }

        if let Some(scanner) = &self.scanner {
            if cases
                .iter()
                .any(|c| matches!(c.decision, Decision::Accept(_)))
            {
                let rcpts: Vec<String> = orders
                    .iter()
                    .flat_map(|o| o.recipients.iter().map(|r| r.alias.clone()))
                    .collect();
                let meta = ScanMeta {
                    ip: msg.ip,
                    helo: msg.helo,
                    mail_from: msg.mail_from,
                    rcpts: &rcpts,
                    queue_id: msg.queue_id,
                };
                let started = Instant::now();
                let outcome = scanner.scan(msg.raw, &meta).await;
                crate::telemetry::scanned(outcome.label(), started.elapsed());
                if let ScanOutcome::Failed(why) = &outcome {
                    tracing::warn!(queue_id = %msg.queue_id, problem = %why, "scanner gave no verdict");
                }
                for case in &mut cases {
                    if let Decision::Accept(marks) = &mut case.decision {
                        if let Some(d) =
                            scan::judge(&outcome, case.policy, self.on_scan_error, marks)
                        {
                            case.decision = d;
                        }
                    }
                }
            }
        }
        Ok(cases)
    }
}

/// The worst decision answers for the transaction (the first order's among
/// equals).
fn combine(cases: Vec<Case<'_>>) -> StageResult {
    let worst = cases
        .iter()
        .map(|c| c.decision.severity())
        .max()
        .unwrap_or(0);
    let answer = cases
        .iter()
        .find(|c| c.decision.severity() == worst)
        .map(|c| c.decision.clone());
    match answer {
        None | Some(Decision::Accept(_)) => StageResult::Accept(
            cases
                .into_iter()
                .map(|c| match c.decision {
                    Decision::Accept(marks) => Admitted {
                        marks,
                        claims: c.claims,
                    },
                    _ => unreachable!("every order accepted"),
                })
                .collect(),
        ),
        Some(Decision::Later { reply, reason }) => StageResult::Later { reply, reason },
        Some(Decision::Refuse { reply, reason }) => StageResult::Refuse {
            reply,
            reason,
            claims: cases.into_iter().map(|c| c.claims).collect(),
        },
    }
}
