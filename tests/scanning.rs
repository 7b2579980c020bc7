//! Spam and malware scanning with the real scanners: rspamd (its HTTP
//! protocol, `/checkv2`) with clamd behind its antivirus module, both
//! started by the test (see `common::scanners`). GTUBE and EICAR are the
//! fixtures; a clean order mail passes with its body byte for byte.
//! Scanner trouble (down, slow, answering garbage) is answered `451 4.7.0`
//! by default, never taken for clean.

mod common;

use std::time::Duration;

use base64::Engine;
use common::http::send_json;
use common::scanners::{self, Clamd, Rspamd, EICAR, GTUBE, GTUBE_ADD_HEADER};
use common::{wait_until, Backend, Relay, Sink, SmtpClient, ADMIN_TOKEN};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ORDER: &str = "6001-01";
const SHOP: &str = "sac@acme-store.com";

fn scanning(relay: &Relay, url: &str, extra: &str) {
    relay.append_config(&format!(
        "\n[scan]\nrspamd_url = \"{url}\"\ntimeout = \"2s\"\n{extra}"
    ));
}

fn message(to: &str, subject: &str, body: &str) -> String {
    format!(
        "From: ACME Store <{SHOP}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\
         Message-ID: <{}@acme-store.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}",
        subject.replace(' ', ".")
    )
}

fn with_attachment(to: &str, subject: &str, name: &str, content: &[u8]) -> String {
    format!(
        "From: ACME Store <{SHOP}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n\
         Your invoice is attached.\r\n--b1\r\nContent-Type: application/octet-stream\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b1--\r\n",
        base64::engine::general_purpose::STANDARD.encode(content)
    )
}

async fn send(relay: &Relay, to: &str, data: &str) -> common::client::Reply {
    let mut c = SmtpClient::ready(relay.smtp).await;
    c.send_mail(SHOP, &[to], data).await
}

fn entries(relay: &Relay) -> Vec<Value> {
    relay.timeline(ORDER)["entries"].as_array().unwrap().clone()
}

async fn metric(relay: &Relay, line_start: &str) -> Option<f64> {
    common::http::metric(relay.api, line_start).await
}

async fn rspamd_and_clamd_judge_what_reaches_a_buyer(backend: Backend) {
    if !scanners::available("rspamd_and_clamd_judge_what_reaches_a_buyer") {
        return;
    }
    let mut clamd = Clamd::start().await;
    let mut rspamd = Rspamd::start(clamd.addr).await;
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    scanning(&relay, &format!("http://{}", rspamd.addr), "");
    let to = relay.create_alias("acme", ORDER, "customer", "buyer@example.com");
    relay.start().await;

    // Clean order mail: delivered, its body byte for byte, unmarked.
    let body = "Ol\u{e1}! Your order 6001-01 was invoiced.\r\n\r\nThanks,\r\nACME\r\n";
    let clean = message(&to, "Order invoiced", body);
    let r = send(&relay, &to, &clean).await;
    assert_eq!(r.code, 250, "{r:?}\n{}", rspamd.log());
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 1).await);
    let delivered = sink.received()[0].clone();
    assert_eq!(delivered.body(), body.as_bytes());
    assert!(!delivered.headers().contains("X-Spam"));

    // GTUBE: rspamd says reject.
    let r = send(&relay, &to, &message(&to, "Win", &format!("{GTUBE}\r\n"))).await;
    assert_eq!(r.status(), "550 5.7.1", "{r:?}");
    // GTUBE's add-header variant: marked and delivered.
    let spammy = message(&to, "Deal", &format!("{GTUBE_ADD_HEADER}\r\n"));
    assert_eq!(send(&relay, &to, &spammy).await.code, 250);
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 2).await);
    let marked = sink.received()[1].headers();
    assert!(marked.contains("X-Spam: Yes\r\n"), "{marked}");
    // Refused instead, once the store says so.
    let r = send_json(
        relay.api,
        "PUT",
        "/v1/stores/acme/settings",
        Some(ADMIN_TOKEN),
        r#"{"spam":"refuse"}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(send(&relay, &to, &spammy).await.status(), "550 5.7.1");

    // EICAR, through rspamd's antivirus to clamd.
    let virus = with_attachment(&to, "Invoice", "fatura.pdf", EICAR.as_bytes());
    let r = send(&relay, &to, &virus).await;
    assert_eq!(r.status(), "550 5.7.1", "{r:?}\n{}", rspamd.log());
    assert!(r.text.contains("Eicar-Test-Signature"), "{r:?}");

    // rspamd's own "come back later".
    let r = send(&relay, &to, &message(&to, "ct-test-soft-reject", "x\r\n")).await;
    assert_eq!(r.status(), "451 4.7.1");
    let r = send(&relay, &to, &message(&to, "ct-test-greylist", "x\r\n")).await;
    assert_eq!(r.status(), "451 4.7.1");

    // clamd down: the antivirus cannot scan, so neither is the mail taken.
    clamd.stop();
    let r = send(&relay, &to, &virus).await;
    assert_eq!(r.status(), "451 4.7.0", "{r:?}");
    // rspamd down: the same.
    rspamd.stop();
    let r = send(&relay, &to, &clean).await;
    assert_eq!(r.status(), "451 4.7.0", "{r:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.received().len(), 2);

    let all = entries(&relay);
    let reasons: Vec<&str> = all.iter().filter_map(|e| e["reason"].as_str()).collect();
    assert_eq!(reasons, ["spam", "spam", "virus"]);
    let flags: Vec<&Value> = all.iter().map(|e| &e["flags"]).collect();
    assert_eq!(flags[2], &serde_json::json!(["spam"]), "{all:?}");
    for (outcome, count) in [
        ("clean", 1.0),
        ("reject", 1.0),
        ("virus", 1.0),
        ("later", 2.0),
    ] {
        assert_eq!(
            metric(
                &relay,
                &format!("ct_relay_scans_total{{outcome=\"{outcome}\"}}")
            )
            .await,
            Some(count),
            "{outcome}"
        );
    }
    for (reason, count) in [
        ("spam", 2.0),
        ("virus", 1.0),
        ("greylisted", 2.0),
        ("scan_failed", 2.0),
    ] {
        assert_eq!(
            metric(
                &relay,
                &format!("ct_relay_policy_refusals_total{{reason=\"{reason}\"}}")
            )
            .await,
            Some(count),
            "{reason}"
        );
    }
}

/// A scanner on a raw socket: silent (never answers) or answering
/// `answer` to every request.
async fn fake_scanner(answer: Option<&'static str>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let _ = stream.read(&mut buf).await;
                match answer {
                    Some(body) => {
                        let reply = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(reply.as_bytes()).await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(60)).await,
                }
            });
        }
    });
    addr
}

async fn scanner_trouble_is_answered_later_or_marked_unscanned(backend: Backend) {
    for (scanner, what) in [
        (fake_scanner(None).await, "silent past scan.timeout"),
        (
            fake_scanner(Some("<html>bad gateway</html>")).await,
            "garbage",
        ),
        (
            fake_scanner(Some(r#"{"action":"wave through"}"#)).await,
            "an unknown action",
        ),
    ] {
        let sink = Sink::start().await;
        let mut relay = Relay::with_smarthost(backend, sink.addr);
        scanning(&relay, &format!("http://{scanner}"), "");
        let to = relay.create_alias("acme", ORDER, "customer", "buyer@example.com");
        relay.start().await;
        let r = send(&relay, &to, &message(&to, "Order", "x\r\n")).await;
        assert_eq!(r.status(), "451 4.7.0", "{what}: {r:?}");
        assert!(entries(&relay).is_empty(), "{what}: not stored");
    }

    // `scan.on_error = "accept"`: taken, and the timeline says unscanned.
    let silent = fake_scanner(None).await;
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    scanning(
        &relay,
        &format!("http://{silent}"),
        "on_error = \"accept\"\n",
    );
    let to = relay.create_alias("acme", ORDER, "customer", "buyer@example.com");
    relay.start().await;
    let r = send(&relay, &to, &message(&to, "Order", "x\r\n")).await;
    assert_eq!(r.code, 250, "{r:?}");
    assert_eq!(
        entries(&relay)[0]["flags"],
        serde_json::json!(["unscanned"])
    );
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 1).await);
}

on_both_backends!(
    rspamd_and_clamd_judge_what_reaches_a_buyer,
    scanner_trouble_is_answered_later_or_marked_unscanned,
);
