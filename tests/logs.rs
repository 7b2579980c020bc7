//! The log operators grep: with `log.format = "json"` every line is one flat
//! JSON object with one `message` key, and each message event (received,
//! delivery, dsn, rcpt_refused, smtp_refused) carries the ids that tie a message's story
//! together, `journalctl -u ct-relay | grep <id>` style. No real address.

mod common;

use std::time::Duration;

use common::{wait_until, Backend, Relay, Sink, SinkReply, SmtpClient};
use serde_json::Value;

const REAL: &str = "JohnDoe@Example.com";
const SHOP: &str = "sac@acme-store.com";
const ORDER: &str = "log-1";

fn message(to: &str, n: u32) -> String {
    format!("From: Shop <{SHOP}>\r\nTo: {to}\r\nSubject: Order {n}\r\n\r\nUpdate {n}.\r\n")
}

/// The queue id of `250 2.0.0 Ok: queued as <id>`.
fn queue_id(reply: &str) -> String {
    assert!(reply.starts_with("2.0.0"), "{reply}");
    reply.rsplit(' ').next().unwrap().to_string()
}

/// Every line of the log as JSON; each must parse and name `message` once.
fn lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            assert_eq!(l.matches("\"message\":").count(), 1, "{l}");
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            assert!(v["timestamp"].is_string() && v["level"].is_string(), "{l}");
            v
        })
        .collect()
}

/// The events of the lines that mention `id` anywhere, in order.
fn story(lines: &[Value], id: &str) -> Vec<Value> {
    lines
        .iter()
        .filter(|l| l["event"].is_string() && l.to_string().contains(id))
        .cloned()
        .collect()
}

fn events(story: &[Value]) -> Vec<String> {
    story
        .iter()
        .map(|l| l["event"].as_str().unwrap().to_string())
        .collect()
}

async fn message_events_are_one_json_line_each(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    relay.set_env("CT_RELAY__LOG__FORMAT", "json");
    let customer = relay.create_alias("acme", ORDER, "customer", REAL);
    relay.create_alias("acme", ORDER, "store", SHOP);
    relay.start().await;

    // Delivered.
    let mut c = SmtpClient::ready(relay.smtp).await;
    let sent = queue_id(
        &c.send_mail(SHOP, &[&customer], &message(&customer, 1))
            .await
            .text,
    );
    assert!(
        wait_until(Duration::from_secs(10), || relay.delivery_states(ORDER)
            == ["delivered"])
        .await
    );

    // Refused by the next hop: failed, and the shop gets the relay's notice.
    sink.script(&[SinkReply::Reply(format!(
        "550 5.1.1 <{REAL}>: user unknown"
    ))]);
    let failed = queue_id(
        &c.send_mail(SHOP, &[&customer], &message(&customer, 2))
            .await
            .text,
    );
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 2).await);

    // Refused at RCPT: the alias is disabled.
    relay.cli(&["alias", "disable", &customer]);
    assert_eq!(c.cmd(&format!("MAIL FROM:<{SHOP}>")).await.code, 250);
    assert_eq!(c.cmd(&format!("RCPT TO:<{customer}>")).await.code, 550);
    assert!(
        wait_until(Duration::from_secs(5), || relay
            .log()
            .contains("rcpt_refused"))
        .await
    );

    // A session calling itself by a real address: its refusal is logged
    // with the client and the reply, the name only as `[unknown]`.
    let (mut other, _) = SmtpClient::connect(relay.smtp).await;
    assert_eq!(other.cmd(&format!("EHLO {REAL}")).await.code, 250);
    assert_eq!(other.cmd(&format!("MAIL FROM:<{SHOP}>")).await.code, 250);
    assert_eq!(other.cmd(&format!("RCPT TO:<{customer}>")).await.code, 550);
    assert!(
        wait_until(Duration::from_secs(5), || relay
            .log()
            .matches("smtp_refused")
            .count()
            == 2)
        .await
    );

    let log = relay.log();
    let lines = lines(&log);
    let session_refusals: Vec<_> = lines
        .iter()
        .filter(|l| l["event"] == "smtp_refused")
        .collect();
    assert_eq!(session_refusals.len(), 2, "{session_refusals:#?}");
    for refusal in &session_refusals {
        assert_eq!(refusal["client"], "127.0.0.1");
        assert!(
            refusal["reply"].as_str().unwrap().starts_with("550 5.1.1"),
            "{refusal}"
        );
    }
    assert_ne!(session_refusals[0]["helo"], "[unknown]");
    assert_eq!(session_refusals[1]["helo"], "[unknown]");

    let delivered = story(&lines, &sent);
    assert_eq!(
        events(&delivered),
        ["received", "delivery"],
        "{delivered:#?}"
    );
    let received = &delivered[0];
    assert_eq!(received["qid"], sent.as_str());
    assert_eq!(received["message_id"], sent.as_str());
    assert_eq!(received["store"], "acme");
    assert_eq!(received["order"], ORDER);
    assert_eq!(received["recipients"], 1);
    assert!(
        received["from"].as_str().unwrap().ends_with("@ct.test"),
        "{received}"
    );
    assert_eq!(received["target"], "ct_relay::message");
    let attempt = &delivered[1];
    assert_eq!(attempt["message_id"], sent.as_str());
    assert_eq!(attempt["to"], customer.as_str());
    assert_eq!(attempt["state"], "delivered");
    assert_eq!(attempt["attempt"], 1);
    assert_eq!(attempt["message"], "delivery attempt");

    let bounced = story(&lines, &failed);
    assert_eq!(
        events(&bounced),
        ["received", "delivery", "dsn"],
        "{bounced:#?}"
    );
    assert_eq!(bounced[1]["state"], "failed");
    let dsn_id = bounced[2]["dsn_message_id"].as_str().unwrap();
    // The notice is a message of its own, with its own delivery line.
    let notice = story(&lines, dsn_id);
    assert!(
        events(&notice).contains(&"delivery".to_string()),
        "{notice:#?}"
    );

    let refused: Vec<_> = lines
        .iter()
        .filter(|l| l["event"] == "rcpt_refused")
        .collect();
    assert_eq!(refused.len(), 2, "one per session: {refused:#?}");
    assert_eq!(refused[0]["to"], customer.as_str());
    assert_eq!(refused[0]["order"], ORDER);

    let lower = log.to_lowercase();
    for real in [REAL, SHOP] {
        assert!(!lower.contains(&real.to_lowercase()), "{real} in the log");
    }
}

on_both_backends!(message_events_are_one_json_line_each);
