//! The policy stage's pure rules over arbitrary input: a message (header,
//! MIME, attachments, archives) judged for one order under a policy and
//! authentication results picked from the first bytes, and the same bytes
//! read as rspamd's answer.
//!
//! Checks, besides "no panic":
//! - a decision's reply is a 4xx (later) or 5xx (refused) with an enhanced
//!   status of the same class, on one line of printable ASCII, and names
//!   no address (replies go onto the timeline);
//! - an order's claim of its participant gets the participant's alias only
//!   when authenticated; a participant's blocked status refuses its mail;
//! - an rspamd answer is taken for clean only when it says `no action` and
//!   names no antivirus symbol.

#![no_main]

use chrono::Utc;
use ct_relay::alias::{AliasKey, Aliaser, MaskMode, Participant, Role, Ttl};
use ct_relay::masking::{addresses, Parsed};
use ct_relay::policy::scan::read_answer;
use ct_relay::policy::{
    judge, resolve_claims, BulkMail, Claim, Client, Decision, Evidence, OrderCase, Outcome,
    ScanOutcome, SpamAction, Standing, StorePolicy,
};
use libfuzzer_sys::fuzz_target;

/// mail-parser panics on some inputs; `mime::parse` catches that, and the
/// fuzzer's hook (which aborts) must let it.
static QUIET: std::sync::Once = std::sync::Once::new();

fn aliaser() -> Aliaser {
    Aliaser::new(
        AliasKey::new((0..32).collect()).unwrap(),
        "ct.fuzz.test",
        Ttl::Months(2),
    )
}

fn participant(a: &Aliaser, role: Role, email: &str) -> Participant {
    a.participant("acme", "1-01", role, email, MaskMode::Hard, Utc::now())
        .unwrap()
}

fn outcome(bits: u8) -> Outcome {
    match bits % 3 {
        0 => Outcome::Pass,
        1 => Outcome::TempError,
        _ => Outcome::NoPass,
    }
}

fn check_reply(d: &Decision) {
    let (reply, temporary) = match d {
        Decision::Accept(_) => return,
        Decision::Later { reply, .. } => (reply, true),
        Decision::Refuse { reply, .. } => (reply, false),
    };
    let class = if temporary { 4 } else { 5 };
    assert_eq!(reply.code / 100, class, "{reply:?}");
    assert!(
        reply
            .status
            .as_deref()
            .is_some_and(|s| s.starts_with(&class.to_string())),
        "{reply:?}"
    );
    let text = reply.to_string();
    let line = text.strip_suffix("\r\n").expect("CRLF");
    assert!(!line.contains(['\r', '\n']), "one line: {text:?}");
    assert!(
        line.bytes().all(|b| b == b' ' || b.is_ascii_graphic()),
        "{text:?}"
    );
    assert!(!line.contains('@'), "no address in a reply: {text:?}");
}

fn check_claims(claims: &[Claim]) {
    for c in claims {
        if let Some(p) = &c.claimed {
            let own = c.alias.as_deref() == Some(p.alias.as_str());
            if c.standing != Standing::Authenticated && p.role != Role::Contact {
                assert!(!own, "an unauthenticated claim got {:?}'s alias", p.role);
            }
            if c.standing == Standing::Authenticated {
                assert!(own);
            }
            if p.blocked && c.standing != Standing::Authenticated {
                assert!(c.blocked);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    QUIET.call_once(ct_relay::mime::quiet_parser_panics);
    if data.len() < 3 {
        return;
    }
    let (knobs, raw) = data.split_at(3);
    let a = aliaser();
    let mut participants = vec![
        participant(&a, Role::Store, "sac@acme-store.com"),
        participant(&a, Role::Customer, "buyer@example.com"),
        participant(&a, Role::Contact, "noreply@carrier.example"),
    ];
    participants[(knobs[2] % 3) as usize].blocked = knobs[2] & 4 != 0;

    let policy = StorePolicy {
        require_authenticated_store: knobs[0] & 1 == 0,
        spam: if knobs[0] & 2 == 0 {
            SpamAction::Mark
        } else {
            SpamAction::Refuse
        },
        bulk_mail: if knobs[0] & 4 == 0 {
            BulkMail::Refuse
        } else {
            BulkMail::Deliver
        },
        approved_senders: if knobs[0] & 8 == 0 {
            Vec::new()
        } else {
            vec!["esp.example".into()]
        },
        ..StorePolicy::default()
    };
    let evidence = Evidence {
        spf: (
            outcome(knobs[1]),
            if knobs[1] & 8 == 0 {
                "acme-store.com"
            } else {
                "esp.example"
            }
            .into(),
        ),
        dkim: vec![(outcome(knobs[1] >> 4), "example.com".into())],
    };
    let header = Parsed::new(raw);
    let mut claimed = addresses(&header.fields, &["from"]);
    claimed.push("bounce@esp.example".into());
    let client = Client {
        evidence: (knobs[0] & 16 == 0).then_some(&evidence),
        trusted: knobs[0] & 32 != 0,
        mail_from: "bounce@esp.example",
    };
    let claims = resolve_claims(
        &claimed,
        &participants,
        &client,
        &policy,
        |address| {
            a.participant(
                "acme",
                "1-01",
                Role::Contact,
                address,
                MaskMode::Hard,
                Utc::now(),
            )
            .ok()
            .map(|p| p.alias)
        },
        Utc::now(),
    );
    check_claims(&claims);
    let mime = ct_relay::mime::parse(raw);
    let recipients = [participants[(knobs[2] as usize >> 4) % 2].clone()];
    let decision = judge(
        &OrderCase {
            policy: &policy,
            recipients: &recipients,
            claims: &claims,
        },
        &header,
        mime.as_ref(),
    );
    check_reply(&decision);
    if claims.iter().any(|c| c.blocked) {
        assert!(matches!(decision, Decision::Refuse { .. }));
    }

    let virus = vec!["CLAM_VIRUS".to_string()];
    let failure = vec!["CLAM_VIRUS_FAIL".to_string()];
    let read = read_answer(raw, &virus, &failure);
    if read == ScanOutcome::Clean {
        // serde skips bytes that are not UTF-8 in fields it ignores;
        // read the rest the same way.
        let answer: serde_json::Value =
            serde_json::from_str(&String::from_utf8_lossy(raw)).expect("clean from JSON");
        assert_eq!(answer["action"], "no action");
        assert!(answer["symbols"].get("CLAM_VIRUS").is_none());
        assert!(answer["symbols"].get("CLAM_VIRUS_FAIL").is_none());
    }
});
