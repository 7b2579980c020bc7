//! A data subject's export: every order, alias and timeline entry of one
//! real address, over the API (scoped tokens see their own store) and the
//! command line; other people's mail is not in it.

mod common;

use std::time::Duration;

use common::http::get;
use common::{wait_until, Backend, Relay, Sink, SmtpClient, ACME_TOKEN, ADMIN_TOKEN};

const ACME: Option<&str> = Some(ACME_TOKEN);
const ADMIN: Option<&str> = Some(ADMIN_TOKEN);
const SHOP: &str = "sac@acme-store.com";
const PERSON: &str = "Maria.Silva@example.com";
const OTHER: &str = "someone.else@example.com";

async fn mail(relay: &Relay, to: &str, subject: &str) {
    let message = format!("From: <{SHOP}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\r\nHello.\r\n");
    let mut c = SmtpClient::ready(relay.smtp).await;
    assert_eq!(c.send_mail(SHOP, &[to], &message).await.code, 250);
}

async fn everything_held_about_a_person_and_nothing_else(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let first = relay.create_alias("acme", "9401-01", "customer", PERSON);
    let second = relay.create_alias("acme", "9402-01", "customer", "maria.silva@EXAMPLE.com");
    let elsewhere = relay.create_alias("shop2", "9403-01", "customer", PERSON);
    let other = relay.create_alias("acme", "9401-01", "customer", OTHER);
    relay.start().await;
    mail(&relay, &first, "to maria").await;
    mail(&relay, &other, "to someone else").await;
    mail(&relay, &second, "maria again").await;
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 3).await);

    let r = get(relay.api, "/v1/subjects/maria.silva@example.com", ADMIN).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let export = r.json();
    let orders = export["orders"].as_array().unwrap();
    let names: Vec<(&str, &str)> = orders
        .iter()
        .map(|o| (o["store"].as_str().unwrap(), o["order"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            ("acme", "9401-01"),
            ("acme", "9402-01"),
            ("shop2", "9403-01")
        ]
    );
    assert_eq!(orders[0]["aliases"][0]["alias"], first.as_str());
    assert_eq!(orders[2]["aliases"][0]["alias"], elsewhere.as_str());
    let subjects: Vec<&str> = orders[0]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        ["to maria"],
        "another person's mail is not exported"
    );
    assert_eq!(orders[1]["entries"][0]["subject"], "maria again");
    assert!(!r.json().to_string().contains(OTHER));
    assert!(!r.json().to_string().contains(&other));

    // A token limited to acme sees acme's orders only; naming another store is refused.
    let scoped = get(relay.api, "/v1/subjects/maria.silva@example.com", ACME)
        .await
        .json();
    assert_eq!(scoped["orders"].as_array().unwrap().len(), 2);
    let r = get(
        relay.api,
        "/v1/subjects/maria.silva@example.com?store=shop2",
        ACME,
    )
    .await;
    assert_eq!(r.status, 403);

    // Unknown: nothing; malformed: 400; both with JSON.
    let none = get(relay.api, "/v1/subjects/nobody@example.com", ADMIN).await;
    assert_eq!(none.status, 200);
    assert_eq!(none.json()["orders"], serde_json::json!([]));
    let bad = get(relay.api, "/v1/subjects/not-an-address", ADMIN).await;
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"].is_string());

    // The command line gives the same.
    let cli = relay.cli(&["subject", "export", "--email", PERSON, "--store", "acme"]);
    assert_eq!(cli["orders"].as_array().unwrap().len(), 2);
    assert_eq!(cli["orders"][0]["aliases"][0]["alias"], first.as_str());
}

on_both_backends!(everything_held_about_a_person_and_nothing_else);
