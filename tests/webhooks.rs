//! Webhooks end to end: a store sets a URL over the API, mail goes through
//! the relay, and a recording HTTP receiver gets signed events, retried when
//! it fails, never holding a real address.

mod common;

use std::time::Duration;

use common::hooks::{HookReceiver, HookRequest};
use common::http::{customer_alias, get, send_json, HttpResponse};
use common::{wait_until, Backend, Relay, Sink, SmtpClient, ACME_TOKEN, ADMIN_TOKEN};
use ct_relay::webhook::signature;

const ACME: Option<&str> = Some(ACME_TOKEN);
const ADMIN: Option<&str> = Some(ADMIN_TOKEN);
const SECRET: &str = "test-webhook-secret-0123456789";
const ORDER: &str = "1234567890123-01";

async fn start(backend: Backend, env: &[(&str, &str)]) -> (Sink, Relay, HookReceiver) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    for (key, value) in env {
        relay.set_env(key, value);
    }
    relay.start().await;
    (sink, relay, HookReceiver::start().await)
}

async fn put_settings(relay: &Relay, token: Option<&str>, store: &str, body: &str) -> HttpResponse {
    let path = format!("/v1/stores/{store}/settings");
    send_json(relay.api, "PUT", &path, token, body).await
}

async fn order_alias(relay: &Relay, store: &str, order: &str, email: &str) -> String {
    let token = if store == "acme" { ACME } else { ADMIN };
    let body = format!(r#"{{"store":"{store}","customer_email":"{email}"}}"#);
    customer_alias(
        relay.api,
        token,
        &format!("/v1/orders/{order}/aliases"),
        &body,
    )
    .await
}

async fn mail(relay: &Relay, from: &str, to: &str, subject: &str) -> String {
    let mut c = SmtpClient::ready(relay.smtp).await;
    let message = format!(
        "From: Shop <{from}>\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nYour parcel left today.\r\n"
    );
    let r = c.cmd(&format!("MAIL FROM:<{from}>")).await;
    assert_eq!(r.code, 250);
    let r = c.cmd(&format!("RCPT TO:<{to}>")).await;
    if r.code != 250 {
        return r.status();
    }
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send_raw(&common::client::stuff(&message)).await;
    c.send_raw(b".\r\n").await;
    c.reply().await.unwrap().status()
}

async fn wait_for(hooks: &HookReceiver, n: usize) -> Vec<HookRequest> {
    let arrived = wait_until(Duration::from_secs(20), || hooks.received().len() >= n).await;
    assert!(
        arrived,
        "{} of {n} webhook requests",
        hooks.received().len()
    );
    hooks.received()
}

/// Every request is a signed POST whose headers agree with its body.
fn check_request(r: &HookRequest) -> serde_json::Value {
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hooks/ct"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let header = r.header(signature::HEADER).expect("signature header");
    let now = chrono::Utc::now().timestamp();
    signature::verify(SECRET, header, &r.body, now, 300).expect("valid signature");
    let event = r.json();
    assert_eq!(r.header("ct-relay-event-id"), event["id"].as_str());
    assert_eq!(r.header("ct-relay-event-type"), event["type"].as_str());
    event
}

async fn events_are_signed_and_hold_no_real_address(backend: Backend) {
    let (sink, relay, hooks) = start(backend, &[]).await;
    let body = format!(
        r#"{{"webhook_url":"{}","webhook_secret":"{SECRET}"}}"#,
        hooks.url("/hooks/ct")
    );
    let set = put_settings(&relay, ACME, "acme", &body).await;
    assert_eq!(set.status, 200, "{}", String::from_utf8_lossy(&set.body));
    assert_eq!(set.json()["webhook_secret"], SECRET);

    let alias = order_alias(&relay, "acme", ORDER, "JohnDoe@Example.COM").await;
    let reply = mail(&relay, "sac@acme-store.com", &alias, "Shipped").await;
    assert!(reply.starts_with("250"), "{reply}");
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 1).await);

    let requests = wait_for(&hooks, 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hooks.received().len(), 2, "one event per change, once each");
    let events: Vec<_> = requests.iter().map(check_request).collect();
    let mut kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    kinds.sort();
    assert_eq!(kinds, ["delivery.updated", "message.accepted"]);
    for r in &requests {
        let text = String::from_utf8_lossy(&r.body).to_lowercase();
        assert!(
            !text.contains("example.com") && !text.contains("acme-store.com"),
            "{text}"
        );
    }
    let timeline = get(relay.api, &format!("/v1/orders/{ORDER}/timeline"), ACME).await;
    let entry_id = timeline.json()["entries"][0]["id"].clone();
    for e in &events {
        assert_eq!(
            (e["store"].as_str(), e["order"].as_str()),
            (Some("acme"), Some(ORDER))
        );
        assert_eq!(e["entry"]["id"], entry_id);
        assert_eq!(e["entry"]["to"][0]["email_alias"], alias.as_str());
        assert_eq!(e["entry"]["subject"], "Shipped");
    }
    let delivered = events
        .iter()
        .find(|e| e["type"] == "delivery.updated")
        .unwrap();
    assert_eq!(delivered["entry"]["deliveries"][0]["state"], "delivered");
}

async fn failed_requests_are_retried_then_given_up(backend: Backend) {
    let (_sink, relay, hooks) = start(backend, &[("CT_RELAY__WEBHOOK__GIVE_UP_AFTER", "3s")]).await;
    let body = format!(
        r#"{{"webhook_url":"{}","webhook_secret":"{SECRET}"}}"#,
        hooks.url("/hooks/ct")
    );
    assert_eq!(put_settings(&relay, ACME, "acme", &body).await.status, 200);

    // Two failures, then success: each event ends up acknowledged once.
    hooks.script(&[500, 503]);
    let alias = order_alias(&relay, "acme", ORDER, "buyer@example.com").await;
    assert!(mail(&relay, "sac@acme-store.com", &alias, "One")
        .await
        .starts_with("250"));
    let requests = wait_for(&hooks, 4).await;
    let mut ids: Vec<String> = requests
        .iter()
        .map(|r| check_request(r)["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2, "retries carry the same event id");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(hooks.received().len(), 4, "nothing sent after success");

    // A receiver that keeps failing: retried until give_up_after, then dropped.
    hooks.script(&[500; 200]);
    let before = hooks.received().len();
    assert!(mail(&relay, "sac@acme-store.com", &alias, "Two")
        .await
        .starts_with("250"));
    tokio::time::sleep(Duration::from_secs(6)).await;
    let tried = hooks.received().len() - before;
    assert!(tried > 2, "retried: {tried}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(hooks.received().len() - before, tried, "given up");
    let metrics = String::from_utf8(get(relay.api, "/metrics", None).await.body).unwrap();
    assert!(
        metrics.contains(r#"ct_relay_webhook_sends_total{outcome="failed"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains("ct_relay_webhook_backlog 0"), "{metrics}");
}

async fn refusals_are_announced_and_removal_stops_events(backend: Backend) {
    let (sink, relay, hooks) = start(backend, &[]).await;
    let body = format!(
        r#"{{"webhook_url":"{}","webhook_secret":"{SECRET}"}}"#,
        hooks.url("/hooks/ct")
    );
    assert_eq!(put_settings(&relay, ADMIN, "acme", &body).await.status, 200);
    let alias = order_alias(&relay, "acme", ORDER, "buyer@example.com").await;
    let gone = send_json(
        relay.api,
        "DELETE",
        &format!("/v1/aliases/{alias}"),
        ACME,
        "",
    )
    .await;
    assert_eq!(gone.status, 200);
    let reply = mail(&relay, "sac@acme-store.com", &alias, "Refused").await;
    assert!(reply.starts_with("550 5.1.1"), "{reply}");
    let event = check_request(&wait_for(&hooks, 1).await[0]);
    assert_eq!(event["type"], "message.refused");
    assert!(event["entry"]["refused"]
        .as_str()
        .unwrap()
        .starts_with("550 5.1.1"));
    assert_eq!(event["entry"]["deliveries"], serde_json::json!([]));

    // A store without a webhook: its mail makes no events.
    let other = order_alias(&relay, "shop2", "v502556llux-01", "maria@example.com").await;
    assert!(mail(&relay, "sac@shop2.example", &other, "Hi")
        .await
        .starts_with("250"));
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 1).await);

    // Removed: no more events for acme either.
    let removed = put_settings(&relay, ACME, "acme", r#"{"webhook_url":null}"#).await;
    assert_eq!(removed.status, 200);
    assert_eq!(removed.json()["webhook_url"], serde_json::Value::Null);
    assert_eq!(removed.json()["webhook_secret"], serde_json::Value::Null);
    let alias = order_alias(&relay, "acme", "2222222222222-01", "b2@example.com").await;
    assert!(mail(&relay, "sac@acme-store.com", &alias, "Quiet")
        .await
        .starts_with("250"));
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 2).await);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(hooks.received().len(), 1, "only the refusal was announced");
}

async fn webhook_settings_are_validated(backend: Backend) {
    let (_sink, relay, hooks) = start(backend, &[]).await;
    let url = hooks.url("/hooks/ct");
    for (body, says) in [
        (
            r#"{"webhook_url":"ftp://example.com/x"}"#.to_string(),
            "https://",
        ),
        (r#"{"webhook_url":"not a url"}"#.to_string(), "absolute URL"),
        (
            format!(r#"{{"webhook_secret":"{SECRET}"}}"#),
            "together with webhook_url",
        ),
        (
            format!(r#"{{"webhook_url":"{url}","webhook_secret":"short"}}"#),
            "16 to 256",
        ),
        (format!(r#"{{"webhook_url":"{url}","extra":1}}"#), "extra"),
    ] {
        let r = put_settings(&relay, ACME, "acme", &body).await;
        assert_eq!(
            (r.status, r.json()["error"].as_str()),
            (422, Some("invalid")),
            "{body}"
        );
        assert!(
            r.json()["message"].as_str().unwrap().contains(says),
            "{body}: {:?}",
            r.json()
        );
    }
    let unchanged = put_settings(&relay, ACME, "acme", "{}").await;
    assert_eq!(unchanged.status, 200);
    assert_eq!(unchanged.json()["webhook_url"], serde_json::Value::Null);

    let set = put_settings(
        &relay,
        ACME,
        "acme",
        &format!(r#"{{"webhook_url":"{url}"}}"#),
    )
    .await;
    let secret = set.json()["webhook_secret"].as_str().unwrap().to_string();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 70,
        "{secret}"
    );
    let moved = format!(r#"{{"webhook_url":"{url}/v2","mask_mode":"soft"}}"#);
    let moved = put_settings(&relay, ACME, "acme", &moved).await.json();
    assert_eq!(moved["webhook_secret"], secret.as_str(), "secret kept");
    assert_eq!(moved["mask_mode"], "soft");
    let shown = get(relay.api, "/v1/stores/acme/settings", ACME)
        .await
        .json();
    assert_eq!(shown, moved);
    let other = put_settings(
        &relay,
        ACME,
        "shop2",
        &format!(r#"{{"webhook_url":"{url}"}}"#),
    )
    .await;
    assert_eq!(other.status, 403);
}

async fn private_addresses_are_refused_by_default(backend: Backend) {
    let env = [("CT_RELAY__WEBHOOK__ALLOW_PRIVATE_NETWORKS", "false")];
    let (_sink, relay, _hooks) = start(backend, &env).await;
    for url in [
        "http://127.0.0.1:9/x",
        "http://[::1]/",
        "http://169.254.169.254/",
        "http://localhost/",
    ] {
        let r = put_settings(
            &relay,
            ACME,
            "acme",
            &format!(r#"{{"webhook_url":"{url}"}}"#),
        )
        .await;
        assert_eq!(r.status, 422, "{url}");
        assert!(
            r.json()["message"].as_str().unwrap().contains("private"),
            "{url}"
        );
    }
    let public = put_settings(
        &relay,
        ACME,
        "acme",
        r#"{"webhook_url":"https://erp.example.com/ct"}"#,
    )
    .await;
    assert_eq!(public.status, 200);
}

/// A sender hammering a dead alias: every RCPT is refused, but the order's
/// timeline gets one entry per sender (with the count and the last time)
/// and the store one event, not one per attempt. Senders are told apart by
/// their alias; those without one (strangers) share an entry.
async fn repeated_refusals_collapse_into_one_entry_and_one_event(backend: Backend) {
    let (_sink, relay, hooks) = start(backend, &[]).await;
    let body = format!(
        r#"{{"webhook_url":"{}","webhook_secret":"{SECRET}"}}"#,
        hooks.url("/hooks/ct")
    );
    assert_eq!(put_settings(&relay, ADMIN, "acme", &body).await.status, 200);
    let alias = order_alias(&relay, "acme", ORDER, "buyer@example.com").await;
    relay.cli(&["alias", "disable", &alias]);
    for _ in 0..3 {
        let mut c = SmtpClient::ready(relay.smtp).await;
        assert_eq!(c.cmd("MAIL FROM:<spam@flood.example>").await.code, 250);
        for _ in 0..4 {
            let r = c.cmd(&format!("RCPT TO:<{alias}>")).await;
            assert_eq!(r.status(), "550 5.1.1");
        }
    }
    // Senders are told apart by their alias: the shop is a participant.
    relay.create_alias("acme", ORDER, "store", "sac@acme-store.com");
    assert!(mail(&relay, "sac@acme-store.com", &alias, "Hi")
        .await
        .starts_with("550 5.1.1"));
    let hooks_seen = wait_for(&hooks, 2).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(hooks.received().len(), 2, "{:?}", hooks_seen.len());
    let timeline = relay.timeline(ORDER);
    let entries = timeline["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{timeline}");
    assert_eq!(entries[0]["repeats"], 12, "{timeline}");
    assert!(entries[0]["last"].as_str().unwrap() >= entries[0]["date"].as_str().unwrap());
    assert_eq!(entries[1]["repeats"], 1);
    assert!(entries[1].get("last").is_none(), "{timeline}");
}

on_both_backends!(
    repeated_refusals_collapse_into_one_entry_and_one_event,
    events_are_signed_and_hold_no_real_address,
    failed_requests_are_retried_then_given_up,
    refusals_are_announced_and_removal_stops_events,
    webhook_settings_are_validated,
    private_addresses_are_refused_by_default,
);
