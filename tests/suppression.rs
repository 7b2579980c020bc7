//! Hard-bounce suppression: a real mailbox that answers "user unknown"
//! makes its participant undeliverable; mail to the alias is then refused
//! at RCPT exactly as an unknown alias is, the order's timeline and webhook
//! get a `participant.undeliverable` event, and changing the address
//! through the API makes it deliverable again. Nothing shows the real
//! address on the way.

mod common;

use std::time::Duration;

use common::hooks::HookReceiver;
use common::http::{get, send_json};
use common::visitor::Visitor;
use common::{wait_until, Backend, Relay, Sink, SinkReply, SmtpClient, ACME_TOKEN};

const ACME: Option<&str> = Some(ACME_TOKEN);
const ORDER: &str = "8101-01";
const SHOP: &str = "sac@acme-store.com";
const BUYER: &str = "buyer@example.com";
const NEW_BUYER: &str = "buyer.new@example.com";

fn message(to: &str) -> String {
    format!("From: Shop <{SHOP}>\r\nTo: <{to}>\r\nSubject: Your order\r\n\r\nIt shipped.\r\n")
}

/// The shop writes to `to`: the RCPT reply, and the final reply if taken.
async fn write(relay: &Relay, to: &str) -> (String, Option<String>) {
    let mut c = SmtpClient::ready(relay.smtp).await;
    assert_eq!(c.cmd(&format!("MAIL FROM:<{SHOP}>")).await.code, 250);
    let rcpt = c.cmd(&format!("RCPT TO:<{to}>")).await;
    if rcpt.code != 250 {
        return (format!("{} {}", rcpt.code, rcpt.text), None);
    }
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send_raw(&common::client::stuff(&message(to))).await;
    c.send_raw(b".\r\n").await;
    let done = c.reply().await.unwrap();
    (
        format!("{} {}", rcpt.code, rcpt.text),
        Some(format!("{} {}", done.code, done.text)),
    )
}

fn entries(relay: &Relay) -> Vec<serde_json::Value> {
    relay.timeline(ORDER)["entries"].as_array().unwrap().clone()
}

async fn alias_info(relay: &Relay, alias: &str) -> serde_json::Value {
    let r = get(relay.api, &format!("/v1/aliases/{alias}"), ACME).await;
    assert_eq!(r.status, 200);
    r.json()
}

async fn an_unknown_mailbox_makes_the_participant_undeliverable(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let buyer = relay.create_alias("acme", ORDER, "customer", BUYER);
    let store = relay.create_alias("acme", ORDER, "store", SHOP);
    relay.start().await;
    let hooks = HookReceiver::start().await;
    let body = format!(r#"{{"webhook_url":"{}"}}"#, hooks.url("/hooks"));
    let set = send_json(relay.api, "PUT", "/v1/stores/acme/settings", ACME, &body).await;
    assert_eq!(set.status, 200);

    // The buyer's mailbox does not exist.
    sink.script(&[SinkReply::Reply(format!(
        "550 5.1.1 <{BUYER}>: Recipient address rejected: User unknown in virtual mailbox table"
    ))]);
    let (_, data) = write(&relay, &buyer).await;
    assert!(data.unwrap().starts_with("250"));
    assert!(
        wait_until(Duration::from_secs(10), || relay
            .delivery_states(ORDER)
            .contains(&"failed".to_string()))
        .await,
        "{} {}",
        relay.timeline(ORDER),
        relay.log()
    );
    let event = entries(&relay)
        .into_iter()
        .find(|e| e["event"] == "participant.undeliverable")
        .expect("an undeliverable event on the timeline");
    assert_eq!(event["to"][0]["email_alias"], buyer.as_str());
    assert_eq!(event["to"][0]["role"], "customer");
    assert_eq!(event["reason"], "5.1.1");
    assert_eq!(alias_info(&relay, &buyer).await["undeliverable"], true);
    assert_eq!(alias_info(&relay, &store).await["undeliverable"], false);

    // The console shows the event as such, not as a message to read.
    let mut v = Visitor::new(relay.api);
    v.log_in(ACME_TOKEN).await;
    let page = v.get(&format!("/console/orders?order={ORDER}")).await;
    assert_eq!(page.status, 200);
    let html = String::from_utf8_lossy(&page.body).to_string();
    assert!(html.contains(&format!("Undeliverable: {buyer}")), "{html}");
    assert_eq!(
        html.matches("Read the message").count(),
        1,
        "one message: {html}"
    );

    // Later mail to the alias is refused at RCPT with the very reply an
    // alias that never existed gets, and the refusal is on the timeline.
    let (refused, _) = write(&relay, &buyer).await;
    let (unknown, _) = write(&relay, "0123456789abcdef0123456789abcdef@ct.test").await;
    assert!(refused.starts_with("550 5.1.1"), "{refused}");
    assert_eq!(refused, unknown);
    assert!(entries(&relay)
        .iter()
        .any(|e| e["reason"] == "undeliverable" && e["refused"].is_string()));
    // The store's own alias still takes mail.
    let (_, data) = write(&relay, &store).await;
    assert!(data.unwrap().starts_with("250"));

    // The webhook hears of it, aliases only.
    assert!(
        wait_until(Duration::from_secs(20), || hooks
            .received()
            .iter()
            .any(|r| r.json()["type"] == "participant.undeliverable"))
        .await
    );
    let sent = hooks
        .received()
        .into_iter()
        .map(|r| r.json())
        .find(|e| e["type"] == "participant.undeliverable")
        .unwrap();
    assert_eq!(sent["entry"]["event"], "participant.undeliverable");
    assert_eq!(sent["entry"]["to"][0]["email_alias"], buyer.as_str());

    // The store learns the buyer's new address and sets it.
    let path = format!("/v1/aliases/{buyer}");
    let changed = send_json(
        relay.api,
        "PATCH",
        &path,
        ACME,
        &format!(r#"{{"email":"{NEW_BUYER}"}}"#),
    )
    .await;
    assert_eq!(
        changed.status,
        200,
        "{}",
        String::from_utf8_lossy(&changed.body)
    );
    assert_eq!(changed.json()["undeliverable"], false);
    assert!(!String::from_utf8_lossy(&changed.body).contains("example.com"));
    let before = sink.received().len();
    let (_, data) = write(&relay, &buyer).await;
    assert!(data.unwrap().starts_with("250"));
    assert!(
        wait_until(Duration::from_secs(10), || sink
            .received()
            .iter()
            .skip(before)
            .any(|m| m.rcpt_to == [NEW_BUYER.to_string()]))
        .await
    );

    // Bad changes are refused, each with a JSON error.
    for (body, status) in [
        (r#"{"email":"not an address"}"#, 422),
        (r#"{"email":"x@ct.test"}"#, 422),
        (r#"{"mail":"a@b.example"}"#, 422),
        ("{", 400),
    ] {
        let r = send_json(relay.api, "PATCH", &path, ACME, body).await;
        assert_eq!(
            r.status,
            status,
            "{body}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(r.json()["error"].is_string(), "{body}");
    }
    // Operators can do the same from the command line.
    let shown = relay.cli(&["alias", "show", &buyer]);
    assert_eq!(shown["undeliverable"], false);
    let set = relay.cli(&["alias", "set-address", &buyer, "--email", BUYER]);
    assert_eq!(set["alias"], buyer.as_str());
    let (ok, _, err) = relay.cli_raw(&["alias", "set-address", &buyer, "--email", "nope"], None);
    assert!(!ok && err.contains("nope"), "{err}");
    let missing = "/v1/aliases/0123456789abcdef0123456789abcdef@ct.test";
    let r = send_json(
        relay.api,
        "PATCH",
        missing,
        ACME,
        r#"{"email":"a@b.example"}"#,
    )
    .await;
    assert_eq!(r.status, 404);

    // No real address anywhere it could leak to.
    let timeline = relay.timeline(ORDER).to_string().to_lowercase();
    let hooks_text: String = hooks
        .received()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).to_lowercase())
        .collect();
    for text in [timeline, hooks_text, relay.log().to_lowercase()] {
        for real in [BUYER, NEW_BUYER] {
            assert!(!text.contains(real), "{real} leaked: {text}");
        }
    }
}

async fn disabled_mailboxes_count_three_times_and_bounces_count_too(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let buyer = relay.create_alias("acme", ORDER, "customer", BUYER);
    relay.start().await;

    // Two "mailbox disabled" failures are not enough (the default is 3).
    let disabled =
        SinkReply::Reply("550 5.2.1 The email account that you tried to reach is disabled".into());
    for n in 1..=2 {
        sink.script(std::slice::from_ref(&disabled));
        let (_, data) = write(&relay, &buyer).await;
        assert!(data.unwrap().starts_with("250"));
        assert!(
            wait_until(Duration::from_secs(10), || relay
                .delivery_states(ORDER)
                .iter()
                .filter(|s| *s == "failed")
                .count()
                == n)
            .await
        );
        // The shop's notice of the failure arrives before the next script.
        assert!(wait_until(Duration::from_secs(10), || sink.received().len() == n).await);
    }
    assert_eq!(alias_info(&relay, &buyer).await["undeliverable"], false);

    // A delivered message's report, coming back days later with 5.1.1,
    // counts like a refusal at the door.
    let before = sink.received().len();
    let (_, data) = write(&relay, &buyer).await;
    assert!(data.unwrap().starts_with("250"));
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() > before).await);
    let bounce_address = sink.received()[before].mail_from.clone();
    assert!(
        wait_until(Duration::from_secs(10), || relay
            .delivery_states(ORDER)
            .contains(&"delivered".to_string()))
        .await
    );
    let report = format!(
        "From: MAILER-DAEMON@mx.example.com\r\nTo: {bounce_address}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"R\"\r\n\r\n\
         --R\r\nContent-Type: message/delivery-status\r\n\r\n\
         Reporting-MTA: dns; mx.example.com\r\n\r\n\
         Final-Recipient: rfc822; {BUYER}\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 <{BUYER}>: user unknown\r\n\r\n--R--\r\n"
    );
    let mut c = SmtpClient::ready(relay.smtp).await;
    assert_eq!(c.send_mail("", &[&bounce_address], &report).await.code, 250);
    assert!(
        wait_until(Duration::from_secs(10), || entries(&relay)
            .iter()
            .any(|e| e["event"] == "participant.undeliverable"))
        .await
    );
    let (refused, _) = write(&relay, &buyer).await;
    assert!(refused.starts_with("550 5.1.1"), "{refused}");
}

on_both_backends!(
    an_unknown_mailbox_makes_the_participant_undeliverable,
    disabled_mailboxes_count_three_times_and_bounces_count_too,
);
