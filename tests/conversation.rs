//! A whole conversation across three participants: the shop writes to the
//! buyer, the buyer replies, a carrier writes in (and so gets a contact
//! alias), and the buyer answers the carrier. Every hop goes through the
//! relay, each side sees only aliases, and the timeline has every hop.

mod common;

use std::time::Duration;

use common::http::order_aliases;
use common::{wait_until, Backend, Received, Relay, Sink, SmtpClient, ACME_TOKEN};

const ORDER: &str = "5001-01";
const BUYER: &str = "buyer@example.com";
const SHOP: &str = "sac@acme-store.com";
const CARRIER: &str = "tracking@carrier.example";

async fn send(relay: &Relay, from: &str, to: &[&str], headers: &str) {
    let message = format!("{headers}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nHello.\r\n");
    let mut c = SmtpClient::ready(relay.smtp).await;
    let r = c.send_mail(from, to, &message).await;
    assert_eq!(r.code, 250, "{r:?}");
}

/// The delivery to `real` among the last `n` the sink took.
fn delivered_to(sink: &Sink, real: &str) -> Received {
    sink.received()
        .into_iter()
        .rev()
        .find(|r| r.rcpt_to == [real])
        .unwrap_or_else(|| panic!("nothing delivered to {real}"))
}

fn field(r: &Received, name: &str) -> String {
    r.headers()
        .split("\r\n")
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
        .unwrap_or_default()
        .to_string()
}

async fn reply_round_trip_across_three_participants(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    relay.start().await;
    let body = format!(r#"{{"store":"acme","customer_email":"{BUYER}","store_email":"{SHOP}"}}"#);
    let path = format!("/v1/orders/{ORDER}/aliases");
    let (buyer, shop) = order_aliases(relay.api, Some(ACME_TOKEN), &path, &body).await;
    let count = |n: usize| {
        let sink = &sink;
        async move {
            assert!(
                wait_until(Duration::from_secs(10), || sink.received().len() == n).await,
                "{n} deliveries"
            )
        }
    };

    // 1. The shop writes to the buyer's alias.
    send(
        &relay,
        SHOP,
        &[&buyer],
        &format!("From: Acme <{SHOP}>\r\nTo: <{buyer}>\r\nSubject: Shipped"),
    )
    .await;
    count(1).await;
    let to_buyer = delivered_to(&sink, BUYER);
    assert_eq!(field(&to_buyer, "From"), format!("From: Acme <{shop}>"));

    // 2. The buyer replies to what the From said: the shop's alias.
    send(
        &relay,
        BUYER,
        &[&shop],
        &format!("From: Buyer <{BUYER}>\r\nTo: <{shop}>\r\nSubject: Re: Shipped"),
    )
    .await;
    count(2).await;
    let to_shop = delivered_to(&sink, SHOP);
    assert_eq!(field(&to_shop, "From"), format!("From: Buyer <{buyer}>"));

    // 3. A carrier writes to the buyer, copying the shop; it becomes a contact.
    let headers = format!(
        "From: Carrier <{CARRIER}>\r\nTo: <{buyer}>\r\nCc: <{shop}>\r\nSubject: Out for delivery"
    );
    send(&relay, CARRIER, &[&buyer, &shop], &headers).await;
    count(4).await;
    let from_carrier = field(&delivered_to(&sink, BUYER), "From");
    let carrier = from_carrier
        .split('<')
        .nth(1)
        .unwrap()
        .trim_end_matches('>')
        .to_string();
    assert!(
        carrier.ends_with("@ct.test") && carrier != buyer && carrier != shop,
        "{from_carrier}"
    );
    assert_eq!(field(&delivered_to(&sink, SHOP), "From"), from_carrier);

    // 4. The buyer answers the carrier's alias (and the shop's).
    let headers = format!(
        "From: Buyer <{BUYER}>\r\nTo: <{carrier}>\r\nCc: <{shop}>\r\nSubject: Re: Out for delivery"
    );
    send(&relay, BUYER, &[&carrier, &shop], &headers).await;
    count(6).await;
    let to_carrier = delivered_to(&sink, CARRIER);
    assert_eq!(field(&to_carrier, "From"), format!("From: Buyer <{buyer}>"));
    assert_eq!(field(&to_carrier, "To"), format!("To: <{carrier}>"));

    for r in sink.received() {
        assert!(
            r.mail_from.starts_with("b-") && r.mail_from.ends_with("@ct.test"),
            "{}",
            r.mail_from
        );
        let headers = r.headers().to_lowercase();
        for real in [BUYER, SHOP, CARRIER] {
            let seen_by_owner = r.rcpt_to == [real];
            assert!(
                seen_by_owner || !headers.contains(real),
                "{real} leaked to {:?}",
                r.rcpt_to
            );
        }
    }

    let all_delivered = || {
        let t = relay.timeline(ORDER);
        t["entries"].as_array().unwrap().iter().all(|e| {
            let ds = e["deliveries"].as_array().unwrap();
            !ds.is_empty() && ds.iter().all(|d| d["state"] == "delivered")
        })
    };
    assert!(wait_until(Duration::from_secs(10), all_delivered).await);
    let timeline = relay.timeline(ORDER);
    let entries = timeline["entries"].as_array().unwrap();
    let roles: Vec<&str> = entries
        .iter()
        .map(|e| e["from"]["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["store", "customer", "contact", "customer"]);
    assert_eq!(entries[2]["from"]["email_alias"], carrier.as_str());
    assert_eq!(entries[3]["to"][0]["role"], "contact");
    let text = timeline.to_string().to_lowercase();
    for real in [BUYER, SHOP, CARRIER] {
        assert!(!text.contains(real), "{real} on the timeline");
    }
}

/// An alias whose real address is under the alias domain would deliver back
/// to the relay. The API and CLI never make one; a row that got there anyway
/// (say, before alias.domain changed) is refused as a loop, not delivered.
async fn an_alias_standing_for_the_alias_domain_is_a_loop(backend: Backend) {
    use ct_relay::alias::{AliasKey, Aliaser, MaskMode, Role, Ttl};
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let (ok, _, err) = relay.cli_raw(
        &[
            "alias",
            "create",
            "--store",
            "acme",
            "--order",
            ORDER,
            "--email",
            "x@ct.test",
        ],
        None,
    );
    assert!(!ok && err.contains("alias"), "{err}");
    let aliaser = Aliaser::new(
        AliasKey::parse(common::TEST_KEY).unwrap(),
        "ct.test",
        Ttl::Months(2),
    );
    let mut looping = aliaser
        .participant(
            "acme",
            ORDER,
            Role::Customer,
            "loop@example.com",
            MaskMode::Hard,
            chrono::Utc::now(),
        )
        .unwrap();
    looping.email = "someone@ct.test".into();
    let settings = ct_relay::config::StorageSettings::with_url(&relay.storage_url());
    let db = ct_relay::storage::open(&settings).await.unwrap();
    db.ensure_participants(std::slice::from_ref(&looping))
        .await
        .unwrap();
    relay.start().await;
    let mut c = SmtpClient::ready(relay.smtp).await;
    assert_eq!(c.cmd("MAIL FROM:<a@example.org>").await.code, 250);
    assert_eq!(
        c.cmd(&format!("RCPT TO:<{}>", looping.alias)).await.code,
        250
    );
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send_raw(b"Subject: loop\r\n\r\nhi\r\n.\r\n").await;
    assert_eq!(c.reply().await.unwrap().status(), "554 5.4.6");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.attempts(), 0);
}

on_both_backends!(
    reply_round_trip_across_three_participants,
    an_alias_standing_for_the_alias_domain_is_a_loop,
);
