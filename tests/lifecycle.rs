//! Order lifecycle over the API: invoiced ends the aliases after the grace
//! period (mail refused, and the refusal on the timeline); reopened brings
//! them back.

mod common;

use std::time::Duration;

use common::http::{get, order_aliases, send_json};
use common::{wait_until, Backend, Relay, Sink, SmtpClient, ACME_TOKEN, ADMIN_TOKEN};

async fn rcpt(relay: &Relay, alias: &str) -> String {
    let mut c = SmtpClient::ready(relay.smtp).await;
    c.cmd("MAIL FROM:<sac@acme-store.com>").await;
    c.cmd(&format!("RCPT TO:<{alias}>")).await.status()
}

async fn invoiced_order_refuses_mail_until_reopened(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay =
        Relay::with_smarthost(backend, sink.addr).env("CT_RELAY__ALIAS__END_GRACE", "1s");
    relay.start().await;
    let body = r#"{"store":"acme","customer_email":"buyer@example.net","store_email":"sac@acme-store.com"}"#;
    let path = "/v1/orders/life-1/aliases";
    let (customer, shop) = order_aliases(relay.api, Some(ACME_TOKEN), path, body).await;

    let event = |e: &str| format!(r#"{{"store":"acme","event":"{e}"}}"#);
    let r = send_json(
        relay.api,
        "POST",
        "/v1/orders/life-1/events",
        Some(ACME_TOKEN),
        &event("invoiced"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["aliases_changed"], 2);
    // Within the grace period the aliases still work.
    assert_eq!(rcpt(&relay, &customer).await, "250 2.1.5");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rcpt(&relay, &customer).await, "550 5.1.1");
    let timeline = get(relay.api, "/v1/orders/life-1/timeline", Some(ACME_TOKEN))
        .await
        .json();
    let entry = &timeline["entries"][0];
    assert!(
        entry["refused"].as_str().unwrap().starts_with("550 5.1.1"),
        "{entry}"
    );
    assert_eq!(entry["to"][0]["email_alias"], customer.as_str());
    assert_eq!(
        entry["from"]["email_alias"],
        shop.as_str(),
        "the sender is the shop, by alias"
    );
    assert_eq!(entry["deliveries"], serde_json::json!([]));
    assert!(!timeline.to_string().contains("buyer@example.net"));

    let r = send_json(
        relay.api,
        "POST",
        "/v1/orders/life-1/events",
        Some(ADMIN_TOKEN),
        &event("reopened"),
    )
    .await;
    assert_eq!(r.status, 200);
    let mut c = SmtpClient::ready(relay.smtp).await;
    let msg = "From: sac@acme-store.com\r\nSubject: Back\r\n\r\nReopened.\r\n";
    assert_eq!(
        c.send_mail("sac@acme-store.com", &[&customer], msg)
            .await
            .code,
        250
    );
    assert!(wait_until(Duration::from_secs(15), || sink.received().len() == 1).await);
    assert_eq!(
        sink.received()[0].rcpt_to,
        vec!["buyer@example.net".to_string()]
    );
}

async fn order_events_are_validated(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    relay.start().await;
    let body = r#"{"store":"acme","customer_email":"buyer@example.net"}"#;
    send_json(
        relay.api,
        "POST",
        "/v1/orders/life-2/aliases",
        Some(ADMIN_TOKEN),
        body,
    )
    .await;
    for (token, path, body, status) in [
        (
            ADMIN_TOKEN,
            "/v1/orders/life-2/events",
            r#"{"store":"acme","event":"shipped"}"#,
            422,
        ),
        (
            ADMIN_TOKEN,
            "/v1/orders/life-2/events",
            r#"{"store":"acme"}"#,
            422,
        ),
        (
            ADMIN_TOKEN,
            "/v1/orders/nope/events",
            r#"{"store":"acme","event":"canceled"}"#,
            404,
        ),
        (
            ACME_TOKEN,
            "/v1/orders/life-2/events",
            r#"{"store":"shop2","event":"canceled"}"#,
            403,
        ),
        (
            ADMIN_TOKEN,
            "/v1/orders/life-2/events",
            r#"{"store":"acme","event":"canceled"}"#,
            200,
        ),
    ] {
        let r = send_json(relay.api, "POST", path, Some(token), body).await;
        assert_eq!(
            r.status,
            status,
            "{body}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
}

on_both_backends!(
    invoiced_order_refuses_mail_until_reopened,
    order_events_are_validated
);
