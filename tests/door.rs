//! Trust at the door, over SMTP against the real binary: spoofs of
//! participants (SPF, DKIM and DMARC alignment against the test DNS
//! server), trusted networks, approved senders, undecided authentication,
//! bulk mail and attachments. Every refusal comes before `250`, lands on
//! the timeline with its reason, reaches the store's webhook and counts in
//! /metrics; none names a real address. Blocks, rate limits and the
//! settings are in tests/door_controls.rs.

mod common;

use std::time::Duration;

use common::dns::DnsServer;
use common::door::*;
use common::hooks::HookReceiver;
use common::{wait_until, Backend, Relay, Sink, SmtpClient};
use ct_relay::delivery::dkim::{generate, DkimSigning, KeyAlgorithm};
use serde_json::Value;

async fn spoofs_of_participants_need_authentication(backend: Backend) {
    let dns = DnsServer::start().await;
    // The store's own domain does not authorise this client; its ESP's
    // bounce subdomain and the ERP do.
    dns.txt("acme-store.com", "v=spf1 ip4:192.0.2.1 -all");
    dns.txt("_dmarc.acme-store.com", "v=DMARC1; p=none");
    dns.txt("em.acme-store.com", "v=spf1 ip4:127.0.0.1 -all");
    dns.txt("esp.example", "v=spf1 ip4:127.0.0.1 -all");
    dns.txt("erp.example", "v=spf1 ip4:127.0.0.1 -all");
    let store_key = generate(KeyAlgorithm::Ed25519).unwrap();
    dns.txt("s1._domainkey.acme-store.com", &store_key.txt);
    let other_key = generate(KeyAlgorithm::Ed25519).unwrap();
    dns.txt("s1._domainkey.other.example", &other_key.txt);
    let store_signer =
        DkimSigning::from_pem(store_key.private_pem.as_bytes(), "acme-store.com", "s1").unwrap();
    let other_signer =
        DkimSigning::from_pem(other_key.private_pem.as_bytes(), "other.example", "s1").unwrap();

    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    checking(&relay, &dns.addr.to_string(), "3s");
    let order = make_order(&relay);
    relay.start().await;
    let hooks = HookReceiver::start().await;
    put_settings(
        &relay,
        &format!(r#"{{"webhook_url":"{}"}}"#, hooks.url("/hooks")),
    )
    .await;
    let signed = |signer: &DkimSigning, data: String| {
        String::from_utf8(signer.sign(data.as_bytes()).unwrap()).unwrap()
    };

    // SPF passes for the ESP's bounce subdomain: aligned with acme-store.com.
    let data = message(STORE_EMAIL, &order.buyer_alias, "Order shipped", "");
    let r = send(
        &relay,
        "bounces@em.acme-store.com",
        &order.buyer_alias,
        &data,
    )
    .await;
    assert_eq!(r, "250 2.0.0");
    // DKIM alone, aligned: SPF passes for the ESP's own domain only.
    let data = signed(
        &store_signer,
        message(STORE_EMAIL, &order.buyer_alias, "Order invoiced", ""),
    );
    let r = send(&relay, "out@esp.example", &order.buyer_alias, &data).await;
    assert_eq!(r, "250 2.0.0");
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 2).await);
    for delivered in sink.received() {
        assert!(
            from_header(&delivered.data).contains(&order.store_alias),
            "{}",
            delivered.text()
        );
    }

    // The issue's phish: signed by another domain, SPF failing.
    let data = signed(
        &other_signer,
        message(
            STORE_EMAIL,
            &order.buyer_alias,
            "Urgent confirm your payment",
            "",
        ),
    );
    let r = send(&relay, "x@other.example", &order.buyer_alias, &data).await;
    assert_eq!(r, "550 5.7.1");
    // Nothing claimed at all (SPF fails for acme-store.com): refused too.
    let data = message(STORE_EMAIL, &order.buyer_alias, "Urgent again", "");
    let r = send(&relay, STORE_EMAIL, &order.buyer_alias, &data).await;
    assert_eq!(r, "550 5.7.1");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.received().len(), 2, "refused mail is not delivered");

    // A buyer's address without authentication: an unverified contact.
    let data = message(BUYER, &order.store_alias, "Question about my order", "");
    let r = send(&relay, BUYER, &order.store_alias, &data).await;
    assert_eq!(r, "250 2.0.0");
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 3).await);
    let from = from_header(&sink.received()[2].data);
    assert!(
        !from.contains(&order.buyer_alias) && from.contains("@ct.test"),
        "{from}"
    );
    no_real_address(&from);

    // The store approves its ERP, which sends as the store from its own
    // servers (SPF passes for erp.example only).
    put_settings(&relay, r#"{"approved_senders":["erp.example"]}"#).await;
    let data = message(STORE_EMAIL, &order.buyer_alias, "Invoice attached", "");
    let r = send(&relay, "out@erp.example", &order.buyer_alias, &data).await;
    assert_eq!(r, "250 2.0.0");
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 4).await);
    assert!(from_header(&sink.received()[3].data).contains(&order.store_alias));

    // A store that does not require it: the spoof goes out, unverified.
    put_settings(&relay, r#"{"require_authenticated_store":false}"#).await;
    let data = message(STORE_EMAIL, &order.buyer_alias, "Lenient", "");
    let r = send(&relay, STORE_EMAIL, &order.buyer_alias, &data).await;
    assert_eq!(r, "250 2.0.0");
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 5).await);
    let from = from_header(&sink.received()[4].data);
    assert!(!from.contains(&order.store_alias), "{from}");

    let all = entries(&relay);
    let timeline = serde_json::to_string(&all).unwrap();
    no_real_address(&timeline);
    let refused: Vec<&Value> = all.iter().filter(|e| e["refused"].is_string()).collect();
    assert_eq!(refused.len(), 2, "{timeline}");
    for e in &refused {
        assert_eq!(e["reason"], "unauthenticated_store");
        assert!(e["refused"].as_str().unwrap().starts_with("550 5.7.1"));
        assert_eq!(e["deliveries"], serde_json::json!([]));
    }
    assert_eq!(refused[0]["subject"], "Urgent confirm your payment");
    let unverified: Vec<&Value> = all
        .iter()
        .filter(|e| e["flags"] == serde_json::json!(["unverified"]))
        .collect();
    assert_eq!(unverified.len(), 2, "{timeline}");
    assert_eq!(unverified[0]["from"]["role"], "contact");
    assert_ne!(unverified[0]["from"]["email_alias"], order.buyer_alias);

    // The store's webhook heard of both refusals, with their reason.
    assert!(
        wait_until(Duration::from_secs(10), || {
            hooks
                .received()
                .iter()
                .filter(|h| h.json()["type"] == "message.refused")
                .count()
                == 2
        })
        .await
    );
    for h in hooks.received() {
        no_real_address(&String::from_utf8_lossy(&h.body));
        if h.json()["type"] == "message.refused" {
            assert_eq!(h.json()["entry"]["reason"], "unauthenticated_store");
        }
    }
    assert_eq!(
        metric(
            &relay,
            "ct_relay_policy_refusals_total{reason=\"unauthenticated_store\"}"
        )
        .await,
        Some(2.0)
    );
    assert_eq!(
        metric(&relay, "ct_relay_policy_marks_total{flag=\"unverified\"}").await,
        Some(2.0)
    );
    no_real_address(&relay.log());
}

async fn undecided_authentication_is_answered_later_and_trusted_networks_pass(backend: Backend) {
    // A DNS server that never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    checking(&relay, &silent.local_addr().unwrap().to_string(), "1s");
    let order = make_order(&relay);
    relay.start().await;

    let data = message(STORE_EMAIL, &order.buyer_alias, "Undecided", "");
    assert_eq!(
        send(&relay, STORE_EMAIL, &order.buyer_alias, &data).await,
        "451 4.7.0"
    );
    let data = message(BUYER, &order.store_alias, "Undecided buyer", "");
    assert_eq!(
        send(&relay, BUYER, &order.store_alias, &data).await,
        "451 4.7.0"
    );
    // A sender that claims no participant needs no answer.
    let data = message("carrier@shipper.example", &order.buyer_alias, "Parcel", "");
    assert_eq!(
        send(&relay, "carrier@shipper.example", &order.buyer_alias, &data).await,
        "250 2.0.0"
    );
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 1).await);
    // Temporary refusals are not stored.
    assert_eq!(entries(&relay).len(), 1);
    assert_eq!(
        metric(
            &relay,
            "ct_relay_policy_refusals_total{reason=\"auth_undecided\"}"
        )
        .await,
        Some(2.0)
    );

    // The same relay with loopback trusted: the store's mail passes as it.
    relay.kill();
    relay.edit_config(
        "[smtp]\n",
        "[smtp]\ntrusted_networks = [\"127.0.0.0/8\", \"::1\"]\n",
    );
    relay.start().await;
    let data = message(STORE_EMAIL, &order.buyer_alias, "Trusted", "");
    assert_eq!(
        send(&relay, STORE_EMAIL, &order.buyer_alias, &data).await,
        "250 2.0.0"
    );
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 2).await);
    assert!(from_header(&sink.received()[1].data).contains(&order.store_alias));
}

fn attachment(name: &str, content: &[u8]) -> String {
    use base64::Engine;
    format!(
        "--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        base64::engine::general_purpose::STANDARD.encode(content)
    )
}

fn with_attachments(to: &str, subject: &str, parts: &[String]) -> String {
    format!(
        "From: Shop <{STORE_EMAIL}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n{}--b--\r\n",
        parts.concat()
    )
}

async fn bulk_mail_and_attachments_are_refused_before_250(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let order = make_order(&relay);
    relay.start().await;
    let to = &order.buyer_alias;

    let newsletter = message(
        STORE_EMAIL,
        to,
        "Black Friday",
        "List-Unsubscribe: <mailto:unsubscribe@acme-store.com>\r\n",
    );
    let mut c = SmtpClient::ready(relay.smtp).await;
    let r = c.send_mail(STORE_EMAIL, &[to], &newsletter).await;
    assert_eq!(r.status(), "550 5.7.1");
    assert!(r.text.contains("no bulk"), "{r:?}");
    // An order notification carrying list-like fields is order mail.
    let notification = message(
        STORE_EMAIL,
        to,
        "Order shipped",
        "Auto-Submitted: auto-generated\r\nPrecedence: bulk\r\nList-Unsubscribe: <https://acme-store.com/u>\r\n",
    );
    assert_eq!(
        c.send_mail(STORE_EMAIL, &[to], &notification).await.code,
        250
    );
    // The store itself may receive list mail.
    let list = message(
        BUYER,
        &order.store_alias,
        "Digest",
        "List-Id: <news.example.org>\r\n",
    );
    assert_eq!(
        c.send_mail(BUYER, &[&order.store_alias], &list).await.code,
        250
    );

    let exe = with_attachments(
        to,
        "Invoice",
        &[attachment("boleto.pdf.exe", b"MZ\x90\x00")],
    );
    let r = c.send_mail(STORE_EMAIL, &[to], &exe).await;
    assert_eq!(r.status(), "550 5.7.1");
    assert!(r.text.contains("\"boleto.pdf.exe\""), "{r:?}");
    let many: Vec<String> = (0..11)
        .map(|i| attachment(&format!("nf{i}.pdf"), b"%PDF-1.4"))
        .collect();
    let r = c
        .send_mail(STORE_EMAIL, &[to], &with_attachments(to, "Many", &many))
        .await;
    assert_eq!(r.status(), "552 5.3.4");
    let fine = with_attachments(to, "Nota fiscal", &[attachment("nota.pdf", b"%PDF-1.4")]);
    assert_eq!(c.send_mail(STORE_EMAIL, &[to], &fine).await.code, 250);
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 3).await);

    let all = entries(&relay);
    let reasons: Vec<&str> = all.iter().filter_map(|e| e["reason"].as_str()).collect();
    assert_eq!(reasons, ["bulk", "attachment", "attachment"]);
    // A refused entry keeps the subject, never an address.
    assert_eq!(all[0]["subject"], "Black Friday");
    no_real_address(&serde_json::to_string(&all).unwrap());
}

on_both_backends!(
    spoofs_of_participants_need_authentication,
    undecided_authentication_is_answered_later_and_trusted_networks_pass,
    bulk_mail_and_attachments_are_refused_before_250,
);
