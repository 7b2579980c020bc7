//! Legal hold: a held order keeps its aliases, messages and timeline past
//! retention; the purge skips it and says how many orders it kept, and
//! lifting the hold lets the purge proceed. Over the API and the CLI.

mod common;

use common::http::{get, send_json};
use common::{Backend, Relay, Sink, ACME_TOKEN, ADMIN_TOKEN};

const ACME: Option<&str> = Some(ACME_TOKEN);
const ADMIN: Option<&str> = Some(ADMIN_TOKEN);

async fn a_held_order_outlives_retention_until_released(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    relay.start().await;
    relay.deliver_one(&sink, ("acme", "9301-01"), 1).await;
    relay.deliver_one(&sink, ("acme", "9302-01"), 2).await;

    let path = "/v1/orders/9301-01/hold?store=acme&reason=dispute%204711";
    let held = send_json(relay.api, "PUT", path, ACME, "").await;
    assert_eq!(held.status, 200, "{}", String::from_utf8_lossy(&held.body));
    let held = held.json();
    assert_eq!(
        (held["held"].clone(), held["reason"].clone()),
        (true.into(), "dispute 4711".into())
    );
    // Idempotent: the first hold stays.
    let again = send_json(
        relay.api,
        "PUT",
        "/v1/orders/9301-01/hold?store=acme&reason=other",
        ACME,
        "",
    )
    .await;
    assert_eq!(again.json()["held_at"], held["held_at"]);
    assert_eq!(again.json()["reason"], "dispute 4711");
    let shown = get(relay.api, "/v1/orders/9301-01/hold?store=acme", ACME).await;
    assert_eq!(shown.json()["held"], true);

    // Bad requests, each with a JSON error.
    for (method, path, token, status) in [
        ("PUT", "/v1/orders/9301-01/hold?store=acme", ACME, 422),
        (
            "PUT",
            "/v1/orders/9301-01/hold?store=acme&reason=%20",
            ACME,
            422,
        ),
        (
            "PUT",
            "/v1/orders/0000-00/hold?store=acme&reason=x",
            ACME,
            404,
        ),
        (
            "PUT",
            "/v1/orders/9301-01/hold?store=shop2&reason=x",
            ACME,
            403,
        ),
        ("PUT", "/v1/orders/9301-01/hold?reason=x", ACME, 400),
        ("DELETE", "/v1/orders/0000-00/hold?store=acme", ADMIN, 404),
    ] {
        let r = send_json(relay.api, method, path, token, "").await;
        assert_eq!(
            r.status,
            status,
            "{method} {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(r.json()["error"].is_string(), "{path}");
    }

    // Everything is past retention now; the held order stays.
    relay.set_env("CT_RELAY__STORAGE__RETENTION", "0s");
    relay.set_env("CT_RELAY__STORAGE__EXPIRED_ALIAS_RETENTION", "0s");
    let purged = relay.cli(&["purge"]);
    assert_eq!(purged["messages"], 1, "{purged}");
    assert_eq!(purged["held_orders"], 1, "{purged}");
    assert_eq!(
        relay.entry_count("9301-01"),
        1,
        "the held order's timeline is kept"
    );
    assert_eq!(relay.entry_count("9302-01"), 0);
    let message_id = relay.timeline("9301-01")["entries"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let kept = get(relay.api, &format!("/v1/messages/{message_id}"), ACME).await;
    assert_eq!(kept.status, 200, "the held order's message is kept");

    // Lifted (from the command line this time), the purge proceeds.
    let released = relay.cli(&["order", "release", "9301-01", "--store", "acme"]);
    assert_eq!(
        (released["held"].clone(), released["was_held"].clone()),
        (false.into(), true.into())
    );
    let purged = relay.cli(&["purge"]);
    assert_eq!(
        (purged["messages"].clone(), purged["held_orders"].clone()),
        (1.into(), 0.into()),
        "{purged}"
    );
    assert_eq!(relay.entry_count("9301-01"), 0);

    // The command line holds too, and names what is wrong.
    let (ok, _, err) = relay.cli_raw(
        &[
            "order", "hold", "9399-01", "--store", "acme", "--reason", "x",
        ],
        None,
    );
    assert!(!ok && err.contains("no order"), "{err}");
    let (ok, _, err) = relay.cli_raw(
        &[
            "order", "hold", "9301-01", "--store", "acme", "--reason", "",
        ],
        None,
    );
    assert!(!ok && err.contains("reason"), "{err}");
}

on_both_backends!(a_held_order_outlives_retention_until_released);
