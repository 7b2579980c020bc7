//! The store's controls at the door, over the API and SMTP: blocking a
//! sender for an order, rate limits that protect a buyer, and the store's
//! policy settings (validated, changed field by field).

mod common;

use common::door::*;
use common::http::{get, send_json};
use common::{Backend, Relay, Sink};

/// `POST` a block of `sender` (for store acme) on the order.
async fn block(relay: &Relay, order: &str, sender: &str) -> common::http::HttpResponse {
    let path = format!("/v1/orders/{order}/blocks");
    let body = format!(r#"{{"store":"acme","sender":"{sender}"}}"#);
    send_json(relay.api, "POST", &path, ADMIN, &body).await
}

/// `DELETE` the block of `sender`.
async fn unblock(relay: &Relay, sender: &str) -> common::http::HttpResponse {
    let path = format!("/v1/orders/{ORDER}/blocks/{sender}?store=acme");
    send_json(relay.api, "DELETE", &path, ADMIN, "").await
}

async fn blocked_senders_are_refused_until_the_block_is_lifted(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let order = make_order(&relay);
    relay.start().await;
    let path = format!("/v1/orders/{ORDER}/blocks");
    let carrier = "tracking@carrier.example";

    // An address that is no participant yet becomes a blocked contact.
    let r = block(&relay, ORDER, carrier).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let blocked = r.json()["senders"][0].clone();
    assert_eq!(blocked["role"], "contact");
    assert!(!String::from_utf8_lossy(&r.body).contains(carrier));
    let data = message(carrier, &order.buyer_alias, "Your parcel", "");
    assert_eq!(
        send(&relay, carrier, &order.buyer_alias, &data).await,
        "550 5.7.1"
    );
    // Blocking the buyer by alias: their mail to the store is refused.
    let r = block(&relay, ORDER, &order.buyer_alias).await;
    assert_eq!(r.status, 200);
    let data = message(BUYER, &order.store_alias, "Refund?", "");
    assert_eq!(
        send(&relay, BUYER, &order.store_alias, &data).await,
        "550 5.7.1"
    );
    let listed = get(relay.api, &format!("{path}?store=acme"), ADMIN)
        .await
        .json();
    assert_eq!(listed["senders"].as_array().unwrap().len(), 2);

    // Bad requests: a clear 4xx.
    let r = send_json(
        relay.api,
        "POST",
        &path,
        ADMIN,
        r#"{"store":"acme","sender":"nobody"}"#,
    )
    .await;
    assert_eq!(r.status, 422);
    let r = block(&relay, "no-such-order", "a@b.example").await;
    assert_eq!(r.status, 404);
    let r = block(&relay, ORDER, "00000000000000000000000000000000@ct.test").await;
    assert_eq!(r.status, 404);

    // Lifted: the carrier's mail is taken again.
    let r = unblock(&relay, carrier).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json()["senders"][0]["email_alias"],
        blocked["email_alias"]
    );
    let data = message(carrier, &order.buyer_alias, "Your parcel again", "");
    assert_eq!(
        send(&relay, carrier, &order.buyer_alias, &data).await,
        "250 2.0.0"
    );
    let again = unblock(&relay, carrier).await;
    assert_eq!(again.status, 404, "nothing blocked any more");

    let reasons: Vec<String> = entries(&relay)
        .iter()
        .filter_map(|e| e["reason"].as_str().map(String::from))
        .collect();
    assert_eq!(reasons, ["blocked", "blocked"]);
}

async fn rate_limits_protect_a_buyer(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    relay.append_config(
        "\n[policy]\nper_sender_and_alias_per_hour = 2\nper_alias_per_hour = 3\n\
         privileged_per_sender_and_alias_per_hour = 5\nprivileged_per_alias_per_hour = 6\n",
    );
    let order = make_order(&relay);
    relay.start().await;
    let to = &order.buyer_alias;
    let carrier = "tracking@carrier.example";
    let other = "support@carrier2.example";

    let mut replies = Vec::new();
    for (i, from) in [carrier, carrier, carrier, other, other].iter().enumerate() {
        let data = message(from, to, &format!("Update {i}"), "");
        replies.push(send(&relay, from, to, &data).await);
    }
    // The third from one sender passes its budget; then the alias's.
    assert_eq!(
        replies,
        [
            "250 2.0.0",
            "250 2.0.0",
            "450 4.7.1",
            "250 2.0.0",
            "450 4.7.1"
        ]
    );
    // The store has the higher budget (checking off: its claim stands).
    let data = message(STORE_EMAIL, to, "Invoice", "");
    assert_eq!(send(&relay, STORE_EMAIL, to, &data).await, "250 2.0.0");
    // Mail to another participant is counted apart.
    let data = message(carrier, &order.store_alias, "Pickup", "");
    assert_eq!(
        send(&relay, carrier, &order.store_alias, &data).await,
        "250 2.0.0"
    );
    assert_eq!(
        metric(
            &relay,
            "ct_relay_policy_refusals_total{reason=\"rate_limited\"}"
        )
        .await,
        Some(2.0)
    );
    assert_eq!(
        entries(&relay)
            .iter()
            .filter(|e| e["refused"].is_string())
            .count(),
        0,
        "temporary refusals are not stored"
    );
}

async fn store_policy_settings_are_validated_and_partial(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    relay.start().await;
    let path = "/v1/stores/acme/settings";
    let defaults = get(relay.api, path, ADMIN).await.json();
    assert_eq!(defaults["require_authenticated_store"], true);
    assert_eq!(defaults["spam"], "mark");
    assert_eq!(defaults["bulk_mail"], "refuse");
    assert_eq!(defaults["attachments"]["max_count"], 10);
    assert_eq!(defaults["attachments"]["max_total_bytes"], 10_485_760);
    assert!(defaults["attachments"]["blocked_extensions"]
        .as_array()
        .unwrap()
        .contains(&"exe".into()));

    let changed = put_settings(
        &relay,
        r#"{"spam":"refuse","attachments":{"max_count":3},"approved_senders":["ERP.Example","noreply@carrier.example"]}"#,
    )
    .await;
    assert_eq!(changed["spam"], "refuse");
    assert_eq!(changed["attachments"]["max_count"], 3);
    assert_eq!(changed["attachments"]["max_total_bytes"], 10_485_760);
    assert_eq!(
        changed["approved_senders"],
        serde_json::json!(["erp.example", "noreply@carrier.example"])
    );
    // Another field later leaves these as they are.
    let later = put_settings(&relay, r#"{"bulk_mail":"deliver"}"#).await;
    assert_eq!(later["spam"], "refuse");
    assert_eq!(later["attachments"]["max_count"], 3);
    assert_eq!(later["mask_mode"], "hard");

    for bad in [
        r#"{"approved_senders":["not a domain"]}"#,
        r#"{"attachments":{"blocked_extensions":[".exe"]}}"#,
        r#"{"attachments":{"max_total_bytes":99999999999}}"#,
        r#"{"spam":"maybe"}"#,
        r#"{"attachments":{"max_size":1}}"#,
    ] {
        let r = send_json(relay.api, "PUT", path, ADMIN, bad).await;
        assert!(r.status == 422 || r.status == 400, "{bad}: {}", r.status);
        assert!(r.json()["message"].is_string());
    }
    assert_eq!(get(relay.api, path, ADMIN).await.json(), later);
}

on_both_backends!(
    blocked_senders_are_refused_until_the_block_is_lifted,
    rate_limits_protect_a_buyer,
    store_policy_settings_are_validated_and_partial,
);
