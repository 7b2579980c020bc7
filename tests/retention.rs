//! Retention per store: a store may keep its mail and timelines for less
//! than `storage.retention`, never more; the purge deletes its mail past
//! its own retention and leaves other stores' and held orders' alone.

mod common;

use std::time::Duration;

use common::http::{get, send_json};
use common::{Backend, Relay, Sink, ACME_TOKEN, ADMIN_TOKEN};

const ACME: Option<&str> = Some(ACME_TOKEN);

async fn a_store_keeps_its_mail_for_less(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    relay.start().await;
    relay.deliver_one(&sink, ("acme", "9801-01"), 1).await;
    relay.deliver_one(&sink, ("acme", "9802-01"), 2).await;
    relay.deliver_one(&sink, ("shop2", "9803-01"), 3).await;

    let path = "/v1/stores/acme/settings";
    for (body, status) in [
        (r#"{"retention": "400d"}"#, 422),
        (r#"{"retention": "soon"}"#, 422),
        (r#"{"retention": "0s"}"#, 422),
        (r#"{"retention": 5}"#, 422),
    ] {
        let r = send_json(relay.api, "PUT", path, ACME, body).await;
        assert_eq!(
            r.status,
            status,
            "{body}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(r.json()["error"].is_string());
    }
    assert_eq!(
        get(relay.api, path, ACME).await.json()["retention"],
        serde_json::Value::Null
    );
    let r = send_json(relay.api, "PUT", path, ACME, r#"{"retention": "1s"}"#).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["retention"], "1s");
    assert_eq!(get(relay.api, path, ACME).await.json()["retention"], "1s");
    // Another store's token cannot change it.
    let other = send_json(
        relay.api,
        "PUT",
        "/v1/stores/shop2/settings",
        ACME,
        r#"{"retention": "1s"}"#,
    )
    .await;
    assert_eq!(other.status, 403);

    // One of acme's orders is held: kept whatever its store's retention.
    let hold = "/v1/orders/9802-01/hold?store=acme&reason=dispute";
    assert_eq!(
        send_json(relay.api, "PUT", hold, ACME, "").await.status,
        200
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let purged = relay.cli(&["purge"]);
    assert_eq!(purged["messages"], 1, "{purged}");
    assert_eq!(
        relay.entry_count("9801-01"),
        0,
        "acme's mail is past its retention"
    );
    assert_eq!(relay.entry_count("9802-01"), 1, "the held order is kept");
    assert_eq!(
        relay.entry_count("9803-01"),
        1,
        "shop2 keeps the global retention"
    );

    // Back to the global retention, from the command line; bounded there too.
    let shown = relay.cli(&["store", "set-retention", "acme", "30d"]);
    assert_eq!(shown["retention"], "30days", "{shown}");
    let (ok, _, err) = relay.cli_raw(&["store", "set-retention", "acme", "999d"], None);
    assert!(!ok && err.contains("storage.retention"), "{err}");
    let (ok, _, err) = relay.cli_raw(&["store", "set-retention", "acme", "often"], None);
    assert!(!ok && err.contains("often"), "{err}");
    let shown = relay.cli(&["store", "set-retention", "acme", "global"]);
    assert_eq!(shown["retention"], serde_json::Value::Null);
    let r = send_json(
        relay.api,
        "PUT",
        path,
        Some(ADMIN_TOKEN),
        r#"{"retention": null}"#,
    )
    .await;
    assert_eq!(r.json()["retention"], serde_json::Value::Null);
}

on_both_backends!(a_store_keeps_its_mail_for_less);
