//! Every header masked: real-world header sets (tests/corpus/headers: ESP
//! transactional mail, a Gmail reply, forwarded mail with ARC, an Outlook
//! reply, mailing-list mail, Apple Mail, a carrier's notification, an ERP
//! writing addresses in unusual forms) go through the relay, shop to buyer,
//! buyer to shop, carrier to both. In every copy delivered, no header field
//! holds any participant's real address in any form a reader decodes; the
//! body is byte for byte as sent, and the fields with no participant in them
//! keep their bytes.

mod common;

use std::time::Duration;

use common::header_reading::{fields, shows};
use common::{wait_until, Backend, Relay, Sink, SmtpClient};
use ct_relay::masking::{addresses, Parsed, REPLY_FIELDS};
use mail_parser::MessageParser;

const STORE: &str = "sac@acme-store.com";
const CARRIER: &str = "entregas@transportadora.example";
const ORDER: &str = "1234567890123-01";

/// Who sends a corpus message to whom.
struct Case {
    file: &'static str,
    order: &'static str,
    customer: &'static str,
    mail_from: &'static str,
    to: &'static [Role],
    /// Fields that must be gone from every copy.
    gone: &'static [&'static str],
    /// Text every copy must still have in its header.
    kept: &'static [&'static str],
}

#[derive(Clone, Copy)]
enum Role {
    Buyer,
    Store,
    Carrier,
}

const BUYER: &str = "maria.silva@gmail.com";

const CASES: &[Case] = &[
    Case {
        file: "01-store-to-buyer-esp-transactional.eml",
        order: ORDER,
        customer: BUYER,
        mail_from: "bounces+1846-a1b2-maria.silva=gmail.com@em1846.acme-store.com",
        to: &[Role::Buyer],
        gone: &["return-path"],
        kept: &[
            "d=acme-store.com;",
            "d=sendgrid.info;",
            "X-SG-EID: u001.5f2CkmL1o3",
            "by mx.example.net (Postfix)",
        ],
    },
    Case {
        file: "02-buyer-to-store-gmail-reply.eml",
        order: ORDER,
        customer: BUYER,
        mail_from: BUYER,
        to: &[Role::Store],
        gone: &[],
        kept: &[
            "X-Gm-Message-State: AOJu0YxBn8EXAMPLEstate",
            "d=gmail.com; s=20230601",
            "Message-ID: <CAFk2mD3Hx4pLq",
        ],
    },
    Case {
        file: "03-store-to-buyer-forwarded.eml",
        order: ORDER,
        customer: BUYER,
        mail_from: "sac+caf_=BUYER-ALIAS-LOCAL=ct.test@acme-store.com",
        to: &[Role::Buyer],
        gone: &[
            "delivered-to",
            "x-original-to",
            "return-path",
            "arc-seal",
            "arc-message-signature",
            "arc-authentication-results",
            "received-spf",
            "authentication-results",
        ],
        kept: &[
            "X-Forwarded-Encrypted: i=2",
            "Resent-Date: Mon, 23 Nov 2026 17:12:40 +0000",
            "d=transportadora.example;",
        ],
    },
    Case {
        file: "04-buyer-to-store-outlook-reply.eml",
        order: "1234567890124-01",
        customer: "maria.silva@outlook.com",
        mail_from: "maria.silva@outlook.com",
        to: &[Role::Store],
        gone: &[],
        kept: &[
            "ARC-Authentication-Results: i=1; mx.microsoft.com 1; spf=none;",
            "header.from=outlook.com;",
            "Thread-Index: AQHbPx3vX1y2Z3Q4R5S6T7U8V9W0Xg==",
            "x-forefront-antispam-report:",
        ],
    },
    Case {
        file: "05-carrier-to-store-mailing-list.eml",
        order: ORDER,
        customer: BUYER,
        mail_from: "avisos-bounces+STORE-ALIAS-LOCAL=ct.test@lists.transportadora.example",
        to: &[Role::Store],
        gone: &["return-path", "delivered-to", "x-original-to"],
        kept: &[
            "List-Id: Avisos de entrega <avisos.lists.transportadora.example>",
            "Precedence: list",
            "X-Mailman-Version: 3.3.9",
        ],
    },
    Case {
        file: "06-store-to-buyer-apple-mail.eml",
        order: ORDER,
        customer: BUYER,
        mail_from: STORE,
        to: &[Role::Buyer],
        gone: &[],
        kept: &[
            "Mime-Version: 1.0 (Mac OS X Mail 16.0 \\(3826.300.87.4.3\\))",
            "Message-Id: <8E7D6C5B-4A39-4281-B7C6-D5E4F3A2B1C0@acme-store.com>",
        ],
    },
    Case {
        file: "07-carrier-to-both-notification.eml",
        order: ORDER,
        customer: BUYER,
        mail_from: "bounce-8812@mailer.transportadora.example",
        to: &[Role::Buyer, Role::Store],
        gone: &["return-path"],
        kept: &[
            "Auto-Submitted: auto-generated",
            "i=@transportadora.example;",
        ],
    },
    Case {
        file: "08-store-to-buyer-and-carrier-unusual-forms.eml",
        order: ORDER,
        customer: BUYER,
        mail_from: STORE,
        to: &[Role::Buyer, Role::Carrier],
        gone: &["autocrypt"],
        kept: &["Organization: ACME Store"],
    },
];

async fn no_participant_address_in_any_header_field(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let store_alias = relay.create_alias("acme", ORDER, "store", STORE);
    let buyer_alias = relay.create_alias("acme", ORDER, "customer", BUYER);
    let carrier_alias = relay.create_alias("acme", ORDER, "contact", CARRIER);
    let store2 = relay.create_alias("acme", "1234567890124-01", "store", STORE);
    let buyer2 = relay.create_alias(
        "acme",
        "1234567890124-01",
        "customer",
        "maria.silva@outlook.com",
    );
    relay.start().await;

    let mut delivered = 0;
    let mut masked_ids = Vec::new();
    for case in CASES {
        let (store_alias, buyer_alias) = if case.order == ORDER {
            (store_alias.as_str(), buyer_alias.as_str())
        } else {
            (store2.as_str(), buyer2.as_str())
        };
        let local = |alias: &str| alias.split('@').next().unwrap().to_string();
        let raw = std::fs::read_to_string(format!("tests/corpus/headers/{}", case.file)).unwrap();
        let message = raw
            .replace("BUYER-ALIAS-LOCAL", &local(buyer_alias))
            .replace("STORE-ALIAS-LOCAL", &local(store_alias))
            .replace("BUYER-ALIAS", buyer_alias)
            .replace("STORE-ALIAS", store_alias)
            .replace("CARRIER-ALIAS", &carrier_alias);
        let mail_from = case
            .mail_from
            .replace("BUYER-ALIAS-LOCAL", &local(buyer_alias))
            .replace("STORE-ALIAS-LOCAL", &local(store_alias));
        let rcpts: Vec<&str> = case
            .to
            .iter()
            .map(|r| match r {
                Role::Buyer => buyer_alias,
                Role::Store => store_alias,
                Role::Carrier => carrier_alias.as_str(),
            })
            .collect();

        let mut c = SmtpClient::ready(relay.smtp).await;
        let reply = c.send_mail(&mail_from, &rcpts, &message).await;
        assert_eq!(reply.code, 250, "{}: {reply:?}", case.file);
        delivered += rcpts.len();
        assert!(
            wait_until(Duration::from_secs(15), || sink.received().len()
                == delivered)
            .await,
            "{}: {}",
            case.file,
            relay.log()
        );

        // The participants: the order's three, and everyone the message made
        // a contact (its senders and reply addresses).
        let parsed = Parsed::new(message.as_bytes());
        let mut participants = vec![
            STORE.to_string(),
            case.customer.to_string(),
            CARRIER.to_string(),
        ];
        participants.extend(addresses(&parsed.fields, REPLY_FIELDS));
        participants.retain(|p| !p.ends_with("@ct.test"));

        let body_at = message.find("\r\n\r\n").unwrap() + 4;
        let sent_fields = fields(message.as_bytes());
        let sent_read = MessageParser::default().parse(message.as_bytes()).unwrap();
        assert_eq!(
            sent_fields.len(),
            sent_read.headers().len(),
            "{}",
            case.file
        );
        // Fields in which the test's readers find no participant, and which
        // no rule removes: each must arrive as it was sent.
        let removed = [
            "return-path",
            "delivered-to",
            "x-original-to",
            "received-spf",
            "authentication-results",
        ];
        let clean: Vec<&(String, String)> = sent_fields
            .iter()
            .zip(sent_read.headers())
            .filter(|((name, raw), h)| {
                !participants.iter().any(|p| shows(raw, &h.value, p))
                    && !raw.contains("ALIAS")
                    && !removed.contains(&name.as_str())
                    && !name.starts_with("arc-")
            })
            .map(|(f, _)| f)
            .collect();
        for copy in &sink.received()[delivered - rcpts.len()..] {
            let got = copy.data.as_slice();
            let file = case.file;
            let got_body_at = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            assert!(
                got[got_body_at..] == message.as_bytes()[body_at..],
                "{file}: the body changed"
            );
            let read = MessageParser::default().parse(got).expect("a message");
            let got_fields = fields(got);
            assert_eq!(
                got_fields.len(),
                read.headers().len(),
                "{file}: fields read alike"
            );
            for ((name, raw), h) in got_fields.iter().zip(read.headers()) {
                for real in &participants {
                    assert!(
                        !shows(raw, &h.value, real),
                        "{file}: {real} in {name}:\n{raw}\nwhole header:\n{}",
                        copy.headers()
                    );
                }
            }
            for gone in case.gone {
                assert!(
                    !got_fields.iter().any(|(n, _)| n == gone),
                    "{file}: {gone} kept"
                );
            }
            let header = copy.headers();
            for kept in case.kept {
                assert!(
                    header.contains(kept),
                    "{file}: `{kept}` lost from\n{header}"
                );
            }
            for (name, raw) in &clean {
                assert!(
                    got_fields.iter().any(|(_, r)| r == raw),
                    "{file}: {name} changed:\n{raw}\nin\n{header}"
                );
            }
            for (name, raw) in &got_fields {
                if ["message-id", "in-reply-to", "references"].contains(&name.as_str())
                    && raw.contains("<m.")
                {
                    let id = raw
                        .split("<m.")
                        .nth(1)
                        .unwrap()
                        .split('>')
                        .next()
                        .unwrap()
                        .to_string();
                    masked_ids.push((file, name.clone(), id));
                }
            }
        }
    }
    // The shop's message id (with its address) became one masked id,
    // wherever it was named: threads still join.
    let order_ids: Vec<&String> = masked_ids
        .iter()
        .filter(|(f, n, _)| {
            (f.starts_with("01") && n == "message-id")
                || ((f.starts_with("02") || f.starts_with("04")) && n == "in-reply-to")
        })
        .map(|(_, _, id)| id)
        .collect();
    assert_eq!(order_ids.len(), 3, "{masked_ids:?}");
    assert!(
        order_ids.iter().all(|id| *id == order_ids[0]),
        "{masked_ids:?}"
    );
    assert!(order_ids[0].ends_with("@ct.test"), "{masked_ids:?}");

    // Only the last line of defence caught these, and it says so.
    let metrics =
        String::from_utf8(common::http::get(relay.api, "/metrics", None).await.body).unwrap();
    assert!(
        metrics.contains("ct_relay_header_leaks_fixed_total{field=\"comments\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ct_relay_header_fields_removed_total{reason=\"envelope\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ct_relay_header_fields_removed_total{reason=\"arc\"} 6"),
        "{metrics}"
    );

    // The timelines hold no real address either.
    for order in [ORDER, "1234567890124-01"] {
        let timeline = relay.timeline(order).to_string().to_lowercase();
        for real in [STORE, BUYER, CARRIER, "maria.silva@outlook.com"] {
            assert!(
                !timeline.contains(real),
                "{real} on the timeline of {order}"
            );
        }
    }
}

/// Bad input through SMTP: a thousand fields naming participants, broken
/// quotes and comments, lines that are no field (no colon, a space in the
/// name, an 8-bit name, a continuation with no field before it), the
/// obsolete `To :`, a malformed address field.
/// Each is masked or removed; none passes with a real address in it.
async fn hostile_headers_are_masked_or_removed(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let store = relay.create_alias("acme", ORDER, "store", STORE);
    relay.create_alias("acme", ORDER, "customer", BUYER);
    relay.start().await;

    // A continuation line with no field before it, then the fields.
    let mut message = String::from(" leading continuation sac@acme-store.com\r\n");
    message.push_str("From: \"ACME <sac@acme-store.com>\r\n");
    message.push_str("Tést: an 8-bit field name, sac@acme-store.com\r\n");
    message.push_str("Reply-To: (ACME <\"sac\"@acme-store.com\r\n");
    message.push_str("Fr om: sac@acme-store.com\r\n");
    message.push_str("To : Maria <maria.silva@gmail.com>,,, <<<\r\n");
    message.push_str("Cc: ;;;\"\"\" maria.silva @ gmail.com ((\r\n");
    message.push_str("not a field at all sac@acme-store.com\r\n");
    for i in 0..1000 {
        message.push_str(&format!(
            "X-Trace-{i}: hop {i} for <maria.silva@gmail.com>\r\n"
        ));
    }
    message.push_str("Subject: ok\r\n\r\nbody sac@acme-store.com\r\n");

    let mut c = SmtpClient::ready(relay.smtp).await;
    let reply = c.send_mail(BUYER, &[&store], &message).await;
    assert_eq!(reply.code, 250, "{reply:?}");
    assert!(wait_until(Duration::from_secs(15), || sink.received().len() == 1).await);
    let copy = &sink.received()[0];
    let read = MessageParser::default().parse(&copy.data).unwrap();
    let got = fields(&copy.data);
    assert_eq!(got.len(), read.headers().len());
    assert_eq!(got.len(), 1000 + 6, "{}", copy.headers());
    for ((name, raw), h) in got.iter().zip(read.headers()) {
        for real in [STORE, BUYER] {
            assert!(!shows(raw, &h.value, real), "{real} in {name}: {raw}");
        }
    }
    // The From is a mailbox with the store's alias, whatever the quote did.
    assert_eq!(
        read.from()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some(store.as_str())
    );
    assert!(copy.data.ends_with(b"\r\n\r\nbody sac@acme-store.com\r\n"));
    let metrics =
        String::from_utf8(common::http::get(relay.api, "/metrics", None).await.body).unwrap();
    assert!(
        metrics.contains("ct_relay_header_fields_removed_total{reason=\"unparsable\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ct_relay_header_leaks_fixed_total{field=\"other\"} 1000"),
        "{metrics}"
    );
}

on_both_backends!(
    no_participant_address_in_any_header_field,
    hostile_headers_are_masked_or_removed
);
