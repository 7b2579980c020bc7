//! The API's read side over real HTTP: an order's timeline and its
//! messages, timelines a page at a time, Prometheus metrics, and the
//! OpenAPI document as served.

mod common;

use std::time::Duration;

use common::http::{customer_alias, get};
use common::{relay_and_sink, wait_until, Backend, SmtpClient, ACME_TOKEN, ADMIN_TOKEN};

const ADMIN: Option<&str> = Some(ADMIN_TOKEN);
const ACME: Option<&str> = Some(ACME_TOKEN);

async fn timeline_and_message_over_http(backend: Backend) {
    let (relay, sink) = relay_and_sink(backend).await;
    let body = r#"{"store":"acme","customer_email":"buyer@example.net","store_email":"sac@acme-store.com"}"#;
    let customer = customer_alias(relay.api, ADMIN, "/v1/orders/h-1/aliases", body).await;
    let mut c = SmtpClient::ready(relay.smtp).await;
    let msg = "From: sac@acme-store.com\r\nSubject: Shipped\r\n\r\nOn its way.\r\n";
    let r = c.send_mail("sac@acme-store.com", &[&customer], msg).await;
    let id = r.text.rsplit(' ').next().unwrap().to_string();
    assert!(wait_until(Duration::from_secs(15), || sink.received().len() == 1).await);

    let t = get(relay.api, "/v1/orders/h-1/timeline", ACME).await;
    assert_eq!(t.status, 200);
    let t = t.json();
    assert_eq!(t["entries"][0]["id"], id.as_str());
    assert_eq!(t["entries"][0]["subject"], "Shipped");
    assert_eq!(t["entries"][0]["to"][0]["email_alias"], customer.as_str());
    assert!(
        !t.to_string().contains("sac@acme-store.com")
            && !t.to_string().contains("buyer@example.net")
    );
    assert_eq!(
        get(relay.api, "/v1/orders/h-1/timeline?store=acme", ADMIN)
            .await
            .json()["store"],
        "acme"
    );
    assert_eq!(
        get(relay.api, "/v1/orders/h-1/timeline?store=shop2", ACME)
            .await
            .status,
        403
    );
    assert_eq!(
        get(relay.api, "/v1/orders/h-1/timeline?page=2", ADMIN)
            .await
            .status,
        400
    );
    assert_eq!(
        get(relay.api, "/v1/orders/none/timeline", ADMIN)
            .await
            .status,
        404
    );

    let m = get(relay.api, &format!("/v1/messages/{id}"), ADMIN).await;
    assert_eq!(m.status, 200);
    assert_eq!(m.header("content-type"), Some("message/rfc822"));
    assert_eq!(
        m.body,
        sink.received()[0].data,
        "the stored masked copy is what was delivered"
    );
    assert_eq!(
        get(relay.api, &format!("/v1/messages/{id}"), None)
            .await
            .status,
        401
    );

    // A message of another store is invisible to a token limited to acme.
    let body = r#"{"store":"shop2","customer_email":"maria@example.net"}"#;
    let maria = customer_alias(relay.api, ADMIN, "/v1/orders/h-2/aliases", body).await;
    let r = c
        .send_mail("loja@shop2.example", &[&maria], "Subject: x\r\n\r\ny\r\n")
        .await;
    let other = r.text.rsplit(' ').next().unwrap().to_string();
    assert_eq!(
        get(relay.api, &format!("/v1/messages/{other}"), ACME)
            .await
            .status,
        404
    );
    assert_eq!(
        get(relay.api, &format!("/v1/messages/{other}"), ADMIN)
            .await
            .status,
        200
    );
    assert_eq!(
        get(relay.api, "/v1/orders/h-2/timeline", ACME).await.json()["entries"],
        serde_json::json!([])
    );
    assert_eq!(get(relay.api, "/v1/messages/nope", ADMIN).await.status, 404);
}

async fn metrics_in_prometheus_text(backend: Backend) {
    let (relay, sink) = relay_and_sink(backend).await;
    let body = r#"{"store":"acme","customer_email":"buyer@example.net"}"#;
    let customer = customer_alias(relay.api, ADMIN, "/v1/orders/m-1/aliases", body).await;
    let mut c = SmtpClient::ready(relay.smtp).await;
    c.cmd("MAIL FROM:<a@example.org>").await;
    assert_eq!(c.cmd("RCPT TO:<x@example.com>").await.status(), "550 5.7.1");
    c.cmd("RSET").await;
    assert_eq!(
        c.send_mail("a@example.org", &[&customer], "Subject: m\r\n\r\nx\r\n")
            .await
            .code,
        250
    );
    assert!(wait_until(Duration::from_secs(15), || sink.received().len() == 1).await);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let m = get(relay.api, "/metrics", None).await;
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    let text = String::from_utf8(m.body).unwrap();
    for line in [
        "ct_relay_messages_accepted_total 1",
        "ct_relay_smtp_refusals_total{reason=\"5.7.1\"} 1",
        "ct_relay_delivery_attempts_total{outcome=\"delivered\"} 1",
        "ct_relay_queue_depth 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
    assert!(
        text.contains("ct_relay_commit_batch_writes_bucket"),
        "{text}"
    );
    assert!(text.contains("ct_relay_commit_seconds_bucket"), "{text}");
}

async fn timeline_pages(backend: Backend) {
    let (relay, sink) = relay_and_sink(backend).await;
    let body = r#"{"store":"acme","customer_email":"buyer@example.net"}"#;
    let customer = customer_alias(relay.api, ADMIN, "/v1/orders/p-1/aliases", body).await;
    let mut c = SmtpClient::ready(relay.smtp).await;
    for i in 0..5 {
        let msg = format!("Subject: m{i}\r\n\r\nx\r\n");
        assert_eq!(
            c.send_mail("a@example.org", &[&customer], &msg).await.code,
            250
        );
    }
    assert!(wait_until(Duration::from_secs(15), || sink.received().len() == 5).await);
    let mut subjects = Vec::new();
    let mut path = "/v1/orders/p-1/timeline?limit=2".to_string();
    loop {
        let page = get(relay.api, &path, ADMIN).await.json();
        subjects.extend(
            page["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["subject"].as_str().unwrap().to_string()),
        );
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/orders/p-1/timeline?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(subjects, ["m0", "m1", "m2", "m3", "m4"]);
    assert_eq!(
        get(relay.api, "/v1/orders/p-1/timeline?limit=0", ADMIN)
            .await
            .status,
        400
    );
    assert_eq!(
        get(relay.api, "/v1/orders/p-1/timeline?after=nope", ADMIN)
            .await
            .status,
        400
    );
}

async fn openapi_document_is_served(backend: Backend) {
    let (relay, _sink) = relay_and_sink(backend).await;
    let doc = get(relay.api, "/v1/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("docs/openapi.json").unwrap()).unwrap();
    assert_eq!(doc.json(), committed);
    assert!(committed["paths"]["/v1/orders/{order}/aliases"]["post"].is_object());
}

on_both_backends!(
    timeline_and_message_over_http,
    metrics_in_prometheus_text,
    timeline_pages,
    openapi_document_is_served,
);
