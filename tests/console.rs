//! The store console over HTTP, as a browser speaks it: login and its
//! refusals, CSRF on every form, store scope, the mask setting, an order's
//! conversation (aliases and roles only, HTML escaped), a message's masked
//! copy, and the queue with its retry button. The same flows in headless
//! Chromium are in tests/console_browser.rs.

mod common;

use std::time::Duration;

use common::http::{customer_alias, send_json};
use common::visitor::{csrf_of, text, Visitor};
use common::{
    relay_and_sink, wait_until, Backend, Relay, Sink, SinkReply, SmtpClient, ACME_TOKEN,
    ADMIN_TOKEN,
};

async fn login_is_needed_and_a_wrong_token_or_a_forged_form_is_refused(backend: Backend) {
    let (relay, _sink) = relay_and_sink(backend).await;
    let mut v = Visitor::new(relay.api);
    let r = v.get("/console/orders").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/console/login"));

    let form = v.get("/console/login").await;
    assert_eq!(form.status, 200);
    let policy = form.header("content-security-policy").unwrap();
    assert!(policy.contains("default-src 'none'") && policy.contains("frame-ancestors 'none'"));
    let csrf = csrf_of(&form);
    let wrong = v
        .post(
            "/console/login",
            &[("token", "not-a-token-0123456789"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert!(text(&wrong).contains("That token is not valid."));
    assert!(
        !v.cookies.iter().any(|(k, _)| k == "ct_console"),
        "no session"
    );

    // A login form posted from elsewhere has no login cookie to match.
    let mut stranger = Visitor::new(relay.api);
    let forged = stranger
        .post("/console/login", &[("token", ACME_TOKEN), ("csrf", &csrf)])
        .await;
    assert_eq!(forged.status, 403);
    assert!(!stranger.cookies.iter().any(|(k, _)| k == "ct_console"));

    let session_csrf = v.log_in(ACME_TOKEN).await;
    let cookie = v
        .cookies
        .iter()
        .find(|(k, _)| k == "ct_console")
        .unwrap()
        .1
        .clone();
    assert!(
        !cookie.contains(ACME_TOKEN),
        "the token is not in the cookie"
    );
    let orders = v.get("/console/orders").await;
    assert_eq!(orders.status, 200);
    assert!(text(&orders).contains("Store <strong>acme</strong>"));
    assert_eq!(orders.header("cache-control"), Some("no-store"));

    // A tampered cookie is no session.
    let mut tampered = Visitor::new(relay.api);
    tampered
        .cookies
        .push(("ct_console".into(), cookie.replacen('1', "2", 1)));
    assert_eq!(tampered.get("/console/orders").await.status, 303);

    // Logging out needs the form's token too.
    assert_eq!(
        v.post("/console/logout", &[("csrf", "forged")])
            .await
            .status,
        403
    );
    let out = v.post("/console/logout", &[("csrf", &session_csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(v.get("/console/orders").await.status, 303, "logged out");
}

async fn the_mask_setting_applies_to_aliases_made_afterwards(backend: Backend) {
    let (relay, _sink) = relay_and_sink(backend).await;
    let before = customer_alias(
        relay.api,
        Some(ACME_TOKEN),
        "/v1/orders/100-01/aliases",
        r#"{"store": "acme", "customer_email": "ana@example.com"}"#,
    )
    .await;
    let mut v = Visitor::new(relay.api);
    let csrf = v.log_in(ACME_TOKEN).await;
    let page = v.get("/console/settings").await;
    let html = text(&page);
    assert!(html.contains("Conversation mask type"));
    assert!(
        html.contains("value=\"hard\" checked"),
        "hard is the default"
    );
    assert!(
        html.contains("john.doe@example.com-"),
        "a soft example for this store"
    );

    let forged = v
        .post(
            "/console/settings",
            &[("csrf", "forged"), ("store", "acme"), ("mask_mode", "soft")],
        )
        .await;
    assert_eq!(forged.status, 403);
    let bad = v
        .post(
            "/console/settings",
            &[("csrf", &csrf), ("store", "acme"), ("mask_mode", "pink")],
        )
        .await;
    assert_eq!(bad.status, 400);
    let other = v
        .post(
            "/console/settings",
            &[("csrf", &csrf), ("store", "shop2"), ("mask_mode", "soft")],
        )
        .await;
    assert_eq!(other.status, 404, "an acme login cannot touch shop2");
    let settings = send_json(
        relay.api,
        "GET",
        "/v1/stores/acme/settings",
        Some(ACME_TOKEN),
        "",
    )
    .await;
    assert_eq!(settings.json()["mask_mode"], "hard", "nothing changed yet");

    let saved = v
        .post(
            "/console/settings",
            &[("csrf", &csrf), ("store", "acme"), ("mask_mode", "soft")],
        )
        .await;
    assert_eq!(saved.status, 303);
    let shown = v.get(saved.header("location").unwrap()).await;
    assert!(text(&shown).contains("Saved."));
    assert!(text(&shown).contains("value=\"soft\" checked"));

    let after = customer_alias(
        relay.api,
        Some(ACME_TOKEN),
        "/v1/orders/100-02/aliases",
        r#"{"store": "acme", "customer_email": "ana@example.com"}"#,
    )
    .await;
    assert!(after.starts_with("ana@example.com-"), "soft now: {after}");
    let old = send_json(
        relay.api,
        "GET",
        &format!("/v1/aliases/{before}"),
        Some(ACME_TOKEN),
        "",
    )
    .await;
    assert_eq!(
        old.json()["mode"],
        "hard",
        "an alias made before keeps its form"
    );
    assert_eq!(old.json()["active"], true);
}

async fn the_conversation_shows_aliases_and_roles_and_never_a_real_address(backend: Backend) {
    let (relay, sink) = relay_and_sink(backend).await;
    let r = send_json(
        relay.api,
        "POST",
        "/v1/orders/200-01/aliases",
        Some(ACME_TOKEN),
        r#"{"store": "acme", "customer_email": "buyer@example.net", "store_email": "sac@acme.example"}"#,
    )
    .await;
    let customer = r.json()["aliases"]["customer"]["alias"]
        .as_str()
        .unwrap()
        .to_string();
    let mut c = SmtpClient::ready(relay.smtp).await;
    let message = "From: Acme <sac@acme.example>\r\nTo: <buyer@example.net>\r\n\
        Subject: Order <b>200</b> shipped\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n\
        Your parcel is on its way.\r\n";
    assert_eq!(
        c.send_mail("sac@acme.example", &[&customer], message)
            .await
            .code,
        250
    );
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 1).await);

    let mut v = Visitor::new(relay.api);
    v.log_in(ACME_TOKEN).await;
    let page = v.get("/console/orders?order=200-01").await;
    assert_eq!(page.status, 200);
    let html = text(&page);
    assert!(
        html.contains("Order &#60;b&#62;200&#60;/b&#62; shipped"),
        "escaped: {html}"
    );
    assert!(!html.contains("<b>200</b>"));
    assert!(html.contains(&customer));
    assert!(html.contains("role-customer") && html.contains("role-store"));
    assert!(html.contains("Your parcel is on its way."));
    for real in ["buyer@example.net", "sac@acme.example"] {
        assert!(!html.contains(real), "{real} on the order page");
    }
    let link = html.find("/console/messages/").unwrap();
    let path = &html[link..link + html[link..].find('"').unwrap()];
    let shown = v.get(path).await;
    assert_eq!(shown.status, 200);
    let html = text(&shown);
    assert!(html.contains("Your parcel is on its way."));
    assert!(html.contains(&customer), "the masked To");
    for real in ["buyer@example.net", "sac@acme.example"] {
        assert!(!html.contains(real), "{real} on the message page");
    }
    assert_eq!(v.get("/console/orders?order=nope-1").await.status, 404);
    assert_eq!(v.get("/console/orders?order=bad%20id").await.status, 400);
}

async fn a_store_login_sees_its_store_only(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    // Retries an hour apart and the queue read hourly: only the console's
    // button, waking the runner, brings one sooner.
    relay.edit_config("retry_initial = \"200ms\"", "retry_initial = \"1h\"");
    relay.edit_config("retry_max = \"1s\"", "retry_max = \"2h\"");
    relay.edit_config("poll_interval = \"200ms\"", "poll_interval = \"1h\"");
    relay.start().await;
    let other = customer_alias(
        relay.api,
        Some(ADMIN_TOKEN),
        "/v1/orders/300-01/aliases",
        r#"{"store": "shop2", "customer_email": "someone@example.net"}"#,
    )
    .await;
    sink.script(&[SinkReply::Reply("451 4.3.0 try later".into())]);
    let mut c = SmtpClient::ready(relay.smtp).await;
    let mail = "From: <x@example.org>\r\nSubject: hi\r\n\r\nhello\r\n";
    assert_eq!(
        c.send_mail("x@example.org", &[&other], mail).await.code,
        250
    );
    let timeline = relay.timeline("300-01");
    let id = timeline["entries"][0]["id"].as_str().unwrap().to_string();
    assert!(
        wait_until(Duration::from_secs(10), || relay.delivery_states("300-01")
            == ["retrying"])
        .await
    );

    let mut acme = Visitor::new(relay.api);
    acme.log_in(ACME_TOKEN).await;
    assert_eq!(acme.get("/console/orders?order=300-01").await.status, 404);
    assert_eq!(
        acme.get("/console/orders?order=300-01&store=shop2")
            .await
            .status,
        404
    );
    assert_eq!(
        acme.get(&format!("/console/messages/{id}")).await.status,
        404
    );
    let queue = text(&acme.get("/console/queue").await);
    assert!(
        !queue.contains("300-01"),
        "shop2's delivery is not acme's to see"
    );

    let mut admin = Visitor::new(relay.api);
    let csrf = admin.log_in(ADMIN_TOKEN).await;
    assert!(text(&admin.get("/console/settings").await).contains("Which store?"));
    assert_eq!(admin.get("/console/orders?order=300-01").await.status, 200);
    let queue = admin.get("/console/queue").await;
    let html = text(&queue);
    assert!(
        html.contains("300-01") && html.contains("451 4.3.0 try later"),
        "{html}"
    );
    let at = html.find("/console/queue/").unwrap();
    let retry = &html[at..at + html[at..].find('"').unwrap()];
    assert_eq!(admin.post(retry, &[("csrf", "forged")]).await.status, 403);
    let done = admin.post(retry, &[("csrf", &csrf)]).await;
    assert_eq!(done.status, 303);
    assert!(text(&admin.get(done.header("location").unwrap()).await)
        .contains("will be tried again now"));
    assert!(
        wait_until(Duration::from_secs(10), || sink.received().len() == 1).await,
        "retried at once and delivered"
    );
}

/// PostgreSQL goes away: the console answers 503 with a page saying so
/// (the session, which needs no database, stays), and pages come back by
/// themselves when it returns.
#[tokio::test(flavor = "multi_thread")]
async fn with_the_database_gone_pages_say_so_and_come_back() {
    let sink = Sink::start().await;
    let (proxy, mut relay) = Relay::behind_database_proxy(sink.addr).await;
    relay.create_alias("acme", "db-1", "customer", "buyer@example.net");
    relay.start().await;
    let mut v = Visitor::new(relay.api);
    v.log_in(ACME_TOKEN).await;
    let page = "/console/orders?order=db-1";
    assert_eq!(v.get(page).await.status, 200);

    proxy.cut();
    for path in [page, "/console/settings", "/console/queue"] {
        let r = v.get(path).await;
        assert_eq!(r.status, 503, "{path}: {}", text(&r));
        assert!(
            text(&r).contains("The database is not answering."),
            "{}",
            text(&r)
        );
    }

    proxy.restore();
    let mut back = false;
    for _ in 0..50 {
        if v.get(page).await.status == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        back,
        "the orders page is served again once the database is back"
    );
}

on_both_backends!(
    login_is_needed_and_a_wrong_token_or_a_forged_form_is_refused,
    the_mask_setting_applies_to_aliases_made_afterwards,
    the_conversation_shows_aliases_and_roles_and_never_a_real_address,
    a_store_login_sees_its_store_only,
);
