//! Inbound SPF, DKIM and DMARC against a test DNS server: the results go
//! into an Authentication-Results field (domains only) and onto the
//! timeline, and with `auth.dmarc_reject` mail failing a `p=reject` policy
//! is refused with 550 5.7.1 and shown on the timeline as refused.

mod common;

use std::time::Duration;

use common::dns::DnsServer;
use common::{wait_until, Backend, Relay, Sink, SmtpClient};
use ct_relay::delivery::dkim::{generate, DkimSigning, KeyAlgorithm};

const ORDER: &str = "4001-01";

async fn start(backend: Backend, dns: &DnsServer) -> (Sink, Relay, String) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    relay.edit_config(
        "[auth]\ncheck = false",
        &format!(
            "[auth]\ncheck = true\ndmarc_reject = true\nnameservers = [\"{}\"]\ntimeout = \"3s\"",
            dns.addr
        ),
    );
    let alias = relay.create_alias("acme", ORDER, "customer", "buyer@example.com");
    relay.start().await;
    (sink, relay, alias)
}

fn message(from: &str, to: &str, subject: &str) -> String {
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\
         Message-ID: <{subject}@test>\r\n\r\nHello.\r\n"
    )
}

fn field(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    let start = text
        .find("Authentication-Results:")
        .expect("an Authentication-Results field");
    let end = text[start..].find("\r\n").map(|i| start + i).unwrap();
    // Unfold.
    let mut out = text[start..end].to_string();
    for line in text[end + 2..].split("\r\n") {
        if !line.starts_with('\t') {
            break;
        }
        out.push(' ');
        out.push_str(line.trim());
    }
    out
}

async fn results_are_recorded_and_dmarc_reject_is_enforced(backend: Backend) {
    let dns = DnsServer::start().await;
    dns.txt("authentic.example", "v=spf1 ip4:127.0.0.1 -all");
    dns.txt("_dmarc.authentic.example", "v=DMARC1; p=reject");
    dns.txt("forged.example", "v=spf1 ip4:192.0.2.1 -all");
    dns.txt("_dmarc.forged.example", "v=DMARC1; p=reject");
    dns.txt("lax.example", "v=spf1 ip4:192.0.2.1 -all");
    dns.txt("_dmarc.lax.example", "v=DMARC1; p=none");
    let key = generate(KeyAlgorithm::Ed25519).unwrap();
    dns.txt("s1._domainkey.authentic.example", &key.txt);
    let signer =
        DkimSigning::from_pem(key.private_pem.as_bytes(), "authentic.example", "s1").unwrap();
    let (sink, relay, alias) = start(backend, &dns).await;

    // Signed, SPF-authorised, aligned: all pass.
    let signed = signer
        .sign(message("shop@authentic.example", &alias, "one").as_bytes())
        .unwrap();
    let mut c = SmtpClient::ready(relay.smtp).await;
    let r = c
        .send_mail(
            "shop@authentic.example",
            &[&alias],
            &String::from_utf8(signed).unwrap(),
        )
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    // Fails SPF, p=none: delivered, marked.
    let r = c
        .send_mail(
            "shop@lax.example",
            &[&alias],
            &message("shop@lax.example", &alias, "two"),
        )
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 2).await);
    let received = sink.received();
    let first = field(&received[0].data);
    assert_eq!(
        first,
        "Authentication-Results: relay.test; spf=pass smtp.mailfrom=authentic.example; \
         dkim=pass header.d=authentic.example; dmarc=pass header.from=authentic.example; \
         arc=none"
    );
    let second = field(&received[1].data);
    assert!(
        second.contains("spf=fail smtp.mailfrom=lax.example") && second.contains("dmarc=fail"),
        "{second}"
    );
    assert!(
        !first.contains("shop@") && !second.contains("shop@"),
        "domains only"
    );

    // Fails SPF under p=reject: refused, and the timeline says so.
    let mut c = SmtpClient::ready(relay.smtp).await;
    assert_eq!(c.cmd("MAIL FROM:<shop@forged.example>").await.code, 250);
    assert_eq!(c.cmd(&format!("RCPT TO:<{alias}>")).await.code, 250);
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send_raw(&common::client::stuff(&message(
        "shop@forged.example",
        &alias,
        "three",
    )))
    .await;
    c.send_raw(b".\r\n").await;
    let r = c.reply().await.unwrap();
    assert_eq!(r.status(), "550 5.7.1", "{r:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.received().len(), 2, "not delivered");

    let timeline = relay.timeline(ORDER);
    let entries = timeline["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(
        entries[0]["authentication"],
        serde_json::json!({"spf": "pass", "dkim": "pass", "dmarc": "pass"})
    );
    assert_eq!(entries[1]["authentication"]["dmarc"], "fail");
    assert!(
        entries[2]["refused"]
            .as_str()
            .unwrap()
            .starts_with("550 5.7.1"),
        "{}",
        entries[2]
    );
    // The session goes on after a refusal.
    assert_eq!(c.cmd("RSET").await.code, 250);
}

on_both_backends!(results_are_recorded_and_dmarc_reject_is_enforced);
