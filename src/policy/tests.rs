use chrono::Utc;

use super::*;
use crate::alias::{AliasKey, Aliaser, MaskMode, Ttl};
use crate::masking::Parsed;

const STORE: &str = "sac@acme-store.com";
const BUYER: &str = "buyer@example.com";
const CARRIER: &str = "noreply@carrier.example";

fn aliaser() -> Aliaser {
    let key = AliasKey::new((0..32).collect()).unwrap();
    Aliaser::new(key, "ct.test", Ttl::Months(2))
}

fn participant(role: Role, email: &str) -> Participant {
    aliaser()
        .participant("acme", "1-01", role, email, MaskMode::Hard, Utc::now())
        .unwrap()
}

fn order() -> Vec<Participant> {
    vec![
        participant(Role::Store, STORE),
        participant(Role::Customer, BUYER),
        participant(Role::Contact, CARRIER),
    ]
}

fn evidence(spf: (Outcome, &str)) -> Evidence {
    Evidence {
        spf: (spf.0, spf.1.to_string()),
        dkim: Vec::new(),
    }
}

fn contact_alias(address: &str) -> Option<String> {
    Some(participant(Role::Contact, address).alias)
}

fn claims_of(
    addresses: &[&str],
    participants: &[Participant],
    evidence: &Evidence,
    policy: &StorePolicy,
) -> Vec<Claim> {
    let addresses: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
    let client = Client {
        evidence: Some(evidence),
        trusted: false,
        mail_from: "",
    };
    resolve_claims(
        &addresses,
        participants,
        &client,
        policy,
        contact_alias,
        Utc::now(),
    )
}

fn decide(claims: &[Claim], to: Role, policy: &StorePolicy, message: &str) -> Decision {
    let recipients = [participant(
        to,
        if to == Role::Store { STORE } else { BUYER },
    )];
    let header = Parsed::new(message.as_bytes());
    let mime = mail_parser::MessageParser::default().parse(message.as_bytes());
    judge(
        &OrderCase {
            policy,
            recipients: &recipients,
            claims,
        },
        &header,
        mime.as_ref(),
    )
}

const PLAIN: &str = "From: x\r\nSubject: Order 1-01\r\n\r\nYour order.\r\n";

#[test]
fn an_authenticated_claim_gets_its_participants_alias() {
    let ps = order();
    let claims = claims_of(
        &[STORE],
        &ps,
        &evidence((Outcome::Pass, "acme-store.com")),
        &StorePolicy::default(),
    );
    assert_eq!(claims[0].alias.as_deref(), Some(ps[0].alias.as_str()));
    assert!(!claims[0].unverified());
    assert_eq!(
        decide(&claims, Role::Customer, &StorePolicy::default(), PLAIN),
        Decision::Accept(Marks::default())
    );
}

#[test]
fn an_unauthenticated_store_claim_is_refused_unless_the_store_says_otherwise() {
    let ps = order();
    let failed = evidence((Outcome::NoPass, "evil.example"));
    let claims = claims_of(&[STORE], &ps, &failed, &StorePolicy::default());
    let Decision::Refuse { reply, reason } =
        decide(&claims, Role::Customer, &StorePolicy::default(), PLAIN)
    else {
        panic!("not refused")
    };
    assert_eq!(reason, Reason::UnauthenticatedStore);
    assert!(reply.to_string().starts_with("550 5.7.1 "));
    // A store that does not require it: an unverified contact of its own.
    let lenient = StorePolicy {
        require_authenticated_store: false,
        ..StorePolicy::default()
    };
    let claims = claims_of(&[STORE], &ps, &failed, &lenient);
    assert_ne!(claims[0].alias.as_deref(), Some(ps[0].alias.as_str()));
    assert_eq!(claims[0].alias, contact_alias(STORE));
    let Decision::Accept(marks) = decide(&claims, Role::Customer, &lenient, PLAIN) else {
        panic!("not accepted")
    };
    assert_eq!(marks.unverified, [STORE]);
    assert_eq!(marks.flags(), ["unverified"]);
}

#[test]
fn an_unauthenticated_buyer_claim_becomes_an_unverified_contact() {
    let ps = order();
    let claims = claims_of(
        &[BUYER],
        &ps,
        &evidence((Outcome::NoPass, "evil.example")),
        &StorePolicy::default(),
    );
    assert_eq!(claims[0].alias, contact_alias(BUYER));
    assert_ne!(claims[0].alias.as_deref(), Some(ps[1].alias.as_str()));
    let Decision::Accept(marks) = decide(&claims, Role::Store, &StorePolicy::default(), PLAIN)
    else {
        panic!("not accepted")
    };
    assert_eq!(marks.unverified, [BUYER]);
}

#[test]
fn a_contacts_unverified_claim_keeps_its_alias_and_a_new_sender_claims_nothing() {
    let ps = order();
    let none = evidence((Outcome::NoPass, "x.example"));
    let claims = claims_of(
        &[CARRIER, "new@shipper.example"],
        &ps,
        &none,
        &StorePolicy::default(),
    );
    assert_eq!(claims[0].alias.as_deref(), Some(ps[2].alias.as_str()));
    assert!(claims[0].unverified());
    assert_eq!(claims[1].alias, contact_alias("new@shipper.example"));
    assert!(!claims[1].unverified());
}

#[test]
fn undecided_authentication_of_the_store_or_buyer_is_later() {
    let ps = order();
    for address in [STORE, BUYER] {
        let claims = claims_of(
            &[address],
            &ps,
            &Evidence::timed_out(),
            &StorePolicy::default(),
        );
        let d = decide(&claims, Role::Customer, &StorePolicy::default(), PLAIN);
        assert!(
            matches!(&d, Decision::Later { reply, reason: Reason::AuthUndecided }
                if reply.to_string().starts_with("451 4.7.0 ")),
            "{address}: {d:?}"
        );
    }
}

#[test]
fn blocks_hit_the_sender_the_mail_comes_from() {
    let mut ps = order();
    ps[1].blocked = true;
    let pass = evidence((Outcome::Pass, "example.com"));
    let fail = evidence((Outcome::NoPass, "evil.example"));
    let policy = StorePolicy::default();
    // The blocked buyer, authenticated or not.
    for e in [&pass, &fail] {
        let claims = claims_of(&[BUYER], &ps, e, &policy);
        assert!(claims[0].blocked);
        assert!(matches!(
            decide(&claims, Role::Store, &policy, PLAIN),
            Decision::Refuse {
                reason: Reason::Blocked,
                ..
            }
        ));
    }
    // A spoof of the buyer was blocked (its contact row): the buyer's own
    // authenticated mail still passes, the next spoof does not.
    let mut ps = order();
    let mut spoof = participant(Role::Contact, BUYER);
    spoof.blocked = true;
    ps.push(spoof);
    assert!(!claims_of(&[BUYER], &ps, &pass, &policy)[0].blocked);
    assert!(claims_of(&[BUYER], &ps, &fail, &policy)[0].blocked);
}

#[test]
fn bulk_mail_to_a_buyer_is_refused_and_order_notifications_pass() {
    let claims = claims_of(
        &["news@acme-store.com"],
        &order(),
        &evidence((Outcome::Pass, "acme-store.com")),
        &StorePolicy::default(),
    );
    let newsletter = "From: x\r\nList-Unsubscribe: <mailto:u@acme-store.com>\r\nSubject: Sale\r\n\r\n50% off\r\n";
    let d = decide(&claims, Role::Customer, &StorePolicy::default(), newsletter);
    assert!(matches!(
        d,
        Decision::Refuse {
            reason: Reason::Bulk,
            ..
        }
    ));
    // To the store, or with the store's consent, it passes.
    assert!(matches!(
        decide(&claims, Role::Store, &StorePolicy::default(), newsletter),
        Decision::Accept(_)
    ));
    let delivering = StorePolicy {
        bulk_mail: BulkMail::Deliver,
        ..StorePolicy::default()
    };
    assert!(matches!(
        decide(&claims, Role::Customer, &delivering, newsletter),
        Decision::Accept(_)
    ));
    let notification = "From: x\r\nAuto-Submitted: auto-generated\r\nPrecedence: bulk\r\nSubject: Shipped\r\n\r\nOn its way\r\n";
    assert!(matches!(
        decide(
            &claims,
            Role::Customer,
            &StorePolicy::default(),
            notification
        ),
        Decision::Accept(_)
    ));
}

#[test]
fn a_refused_attachment_is_named_in_the_reply() {
    let claims = claims_of(
        &[],
        &order(),
        &evidence((Outcome::Pass, "x")),
        &StorePolicy::default(),
    );
    let message = "From: x\r\nSubject: invoice\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n\
--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"invoice.pdf.exe\"\r\n\r\nMZ\r\n--b--\r\n";
    let Decision::Refuse { reply, reason } =
        decide(&claims, Role::Customer, &StorePolicy::default(), message)
    else {
        panic!("not refused")
    };
    assert_eq!(reason, Reason::Attachment);
    assert!(reply.to_string().contains("\"invoice.pdf.exe\""), "{reply}");
}

#[test]
fn the_worst_decision_is_the_most_severe() {
    let accept = Decision::Accept(Marks::default());
    let later = Decision::Later {
        reply: replies::rate_limited(),
        reason: Reason::RateLimited,
    };
    let refuse = Decision::Refuse {
        reply: replies::spam(),
        reason: Reason::Spam,
    };
    assert!(accept.severity() < later.severity());
    assert!(later.severity() < refuse.severity());
}
