//! The console's side of the trust rules: the store's policy form on the
//! settings page (saved as the API saves it, bad values named) and the
//! order view's Block / Unblock buttons, whose effect SMTP then shows.

mod common;

use common::http::{get, send_json};
use common::visitor::{csrf_of, text, Visitor};
use common::{Backend, Relay, Sink, SmtpClient, ACME_TOKEN, ADMIN_TOKEN};

const ORDER: &str = "7001-01";

async fn the_policy_form_saves_what_the_api_shows(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    relay.start().await;
    let mut v = Visitor::new(relay.api);
    v.log_in(ACME_TOKEN).await;
    let page = v.get("/console/settings").await;
    assert_eq!(page.status, 200);
    let html = text(&page);
    assert!(html.contains("name=\"require_authenticated_store\" value=\"on\" checked"));
    assert!(html.contains("id=\"spam-mark\" name=\"spam\" value=\"mark\" checked"));
    assert!(
        html.contains(">exe, scr,"),
        "the default refused types are shown"
    );
    let csrf = csrf_of(&page);

    let form = [
        ("csrf", csrf.as_str()),
        ("store", "acme"),
        ("approved_senders", "erp.example\r\nnoreply@carrier.example"),
        ("spam", "refuse"),
        ("bulk_mail", "deliver"),
        ("max_count", "4"),
        ("max_total_mib", "2.5"),
        ("blocked_extensions", "exe, js"),
    ];
    let r = v.post("/console/settings/policy", &form).await;
    assert_eq!(r.status, 303, "{}", text(&r));
    let api = get(relay.api, "/v1/stores/acme/settings", Some(ACME_TOKEN))
        .await
        .json();
    assert_eq!(api["require_authenticated_store"], false, "unticked");
    assert_eq!(
        api["approved_senders"],
        serde_json::json!(["erp.example", "noreply@carrier.example"])
    );
    assert_eq!(api["spam"], "refuse");
    assert_eq!(api["bulk_mail"], "deliver");
    assert_eq!(api["attachments"]["max_count"], 4);
    assert_eq!(api["attachments"]["max_total_bytes"], 2_621_440);
    assert_eq!(
        api["attachments"]["blocked_extensions"],
        serde_json::json!(["exe", "js"])
    );
    let saved = text(&v.get(r.header("location").unwrap()).await);
    assert!(saved.contains("Saved. Mail to the store"), "{saved}");
    assert!(saved.contains("value=\"2.5\""));

    // Bad values: a page naming the problem, nothing changed.
    let mut bad = form;
    bad[2] = ("approved_senders", "not a domain");
    let r = v.post("/console/settings/policy", &bad).await;
    assert_eq!(r.status, 400);
    assert!(text(&r).contains("`not`"), "{}", text(&r));
    bad[2] = form[2];
    bad[5] = ("max_count", "many");
    assert_eq!(v.post("/console/settings/policy", &bad).await.status, 400);
    // Without the session's CSRF token: refused.
    let mut forged = form;
    forged[0] = ("csrf", "0000");
    assert_eq!(
        v.post("/console/settings/policy", &forged).await.status,
        403
    );
    let after = get(relay.api, "/v1/stores/acme/settings", Some(ACME_TOKEN))
        .await
        .json();
    assert_eq!(after, api);
    // Another store's settings are not this login's.
    let mut other = form;
    other[1] = ("store", "shop2");
    let r = v.post("/console/settings/policy", &other).await;
    assert_eq!(r.status, 404, "{}", text(&r));
}

async fn the_order_view_blocks_and_unblocks_a_sender(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let buyer = relay.create_alias("acme", ORDER, "customer", "buyer@example.com");
    let shop = relay.create_alias("acme", ORDER, "store", "sac@acme-store.com");
    relay.start().await;
    let mut v = Visitor::new(relay.api);
    v.log_in(ADMIN_TOKEN).await;
    let path = format!("/console/orders?order={ORDER}&store=acme");
    let page = v.get(&path).await;
    let html = text(&page);
    assert!(html.contains(&buyer) && html.contains(&shop));
    assert!(!html.contains("buyer@example.com"), "aliases only");
    assert_eq!(html.matches("name=\"action\" value=\"block\"").count(), 2);
    let csrf = csrf_of(&page);

    let action = format!("/console/orders/{ORDER}/blocks");
    let block = [
        ("csrf", csrf.as_str()),
        ("store", "acme"),
        ("sender", buyer.as_str()),
        ("action", "block"),
    ];
    let r = v.post(&action, &block).await;
    assert_eq!(r.status, 303, "{}", text(&r));
    let listed = get(
        relay.api,
        &format!("/v1/orders/{ORDER}/blocks?store=acme"),
        Some(ADMIN_TOKEN),
    )
    .await
    .json();
    assert_eq!(listed["senders"][0]["email_alias"], buyer);
    let html = text(&v.get(&path).await);
    assert!(html.contains("name=\"action\" value=\"unblock\""));

    // The buyer's mail to the store is refused now, and shows as such.
    let mut c = SmtpClient::ready(relay.smtp).await;
    let data =
        format!("From: <buyer@example.com>\r\nTo: <{shop}>\r\nSubject: Refund\r\n\r\nPlease.\r\n");
    let r = c.send_mail("buyer@example.com", &[&shop], &data).await;
    assert_eq!(r.status(), "550 5.7.1");
    let html = text(&v.get(&path).await);
    assert!(html.contains("Refused at the door (blocked)"), "{html}");

    let mut unblock = block;
    unblock[3] = ("action", "unblock");
    let r = v.post(&action, &unblock).await;
    assert_eq!(r.status, 303);
    let r = c.send_mail("buyer@example.com", &[&shop], &data).await;
    assert_eq!(r.code, 250);

    // A sender that is not of this order, or a forged form: refused.
    let mut stranger = block;
    stranger[2] = ("sender", "00000000000000000000000000000000@ct.test");
    assert_eq!(v.post(&action, &stranger).await.status, 404);
    let mut forged = block;
    forged[0] = ("csrf", "0000");
    assert_eq!(v.post(&action, &forged).await.status, 403);
    let r = send_json(
        relay.api,
        "GET",
        &format!("/v1/orders/{ORDER}/blocks?store=acme"),
        Some(ADMIN_TOKEN),
        "",
    )
    .await;
    assert_eq!(r.json()["senders"], serde_json::json!([]));
}

async fn the_order_view_holds_and_releases_an_order(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    relay.create_alias("acme", ORDER, "customer", "buyer@example.com");
    relay.start().await;
    let mut v = Visitor::new(relay.api);
    v.log_in(ACME_TOKEN).await;
    let path = format!("/console/orders?order={ORDER}&store=acme");
    let page = v.get(&path).await;
    assert!(text(&page).contains("Put on hold"));
    let csrf = csrf_of(&page);
    let action = format!("/console/orders/{ORDER}/hold");
    let hold = [
        ("csrf", csrf.as_str()),
        ("store", "acme"),
        ("action", "hold"),
        ("reason", "chargeback 4711"),
    ];
    let r = v.post(&action, &hold).await;
    assert_eq!(r.status, 303, "{}", text(&r));
    let api = format!("/v1/orders/{ORDER}/hold?store=acme");
    let shown = get(relay.api, &api, Some(ACME_TOKEN)).await.json();
    assert_eq!(
        (shown["held"].clone(), shown["reason"].clone()),
        (true.into(), "chargeback 4711".into())
    );
    let html = text(&v.get(&path).await);
    assert!(
        html.contains("chargeback 4711") && html.contains("Lift the hold"),
        "{html}"
    );

    // No reason, another store, a forged form: refused, nothing changes.
    let mut empty = hold;
    empty[3] = ("reason", " ");
    assert_eq!(v.post(&action, &empty).await.status, 422);
    let mut elsewhere = hold;
    elsewhere[1] = ("store", "shop2");
    assert_eq!(v.post(&action, &elsewhere).await.status, 404);
    let mut forged = hold;
    forged[0] = ("csrf", "0000");
    assert_eq!(v.post(&action, &forged).await.status, 403);

    let mut release = hold;
    release[2] = ("action", "release");
    assert_eq!(v.post(&action, &release).await.status, 303);
    let shown = get(relay.api, &api, Some(ACME_TOKEN)).await.json();
    assert_eq!(shown["held"], false);
}

on_both_backends!(
    the_policy_form_saves_what_the_api_shows,
    the_order_view_blocks_and_unblocks_a_sender,
    the_order_view_holds_and_releases_an_order,
);
