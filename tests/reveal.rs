//! Audited unmasking: `alias show` prints a participant's real address only
//! with `--reveal` and a `--reason`, and every reveal is in the audit
//! (`audit list`) with who asked, when, which alias and why.

mod common;

use common::http::send_json;
use common::{Backend, Relay, ACME_TOKEN, ADMIN_TOKEN};

const REAL: &str = "buyer@example.com";

async fn the_real_address_is_shown_only_when_revealed_and_audited(backend: Backend) {
    // Commands only: the relay is never started.
    let relay = Relay::with_smarthost(backend, "127.0.0.1:9".parse().unwrap());
    let alias = relay.create_alias("acme", "9201-01", "customer", REAL);

    let shown = relay.cli(&["alias", "show", &alias]);
    assert_eq!(shown["alias"], alias.as_str());
    assert!(shown.get("email").is_none(), "{shown}");
    assert!(!shown.to_string().contains(REAL));
    assert_eq!(
        relay.cli(&["audit", "list"])["reveals"],
        serde_json::json!([])
    );

    // --reveal needs a reason, and a reason needs --reveal.
    let (ok, _, err) = relay.cli_raw(&["alias", "show", &alias, "--reveal"], None);
    assert!(!ok && err.contains("--reason"), "{err}");
    let (ok, _, _) = relay.cli_raw(&["alias", "show", &alias, "--reason", "x"], None);
    assert!(!ok);
    let (ok, _, err) = relay.cli_raw(
        &["alias", "show", &alias, "--reveal", "--reason", "  "],
        None,
    );
    assert!(!ok && err.contains("reason"), "{err}");
    let (ok, _, err) = relay.cli_raw(
        &[
            "alias",
            "show",
            "0123456789abcdef0123456789abcdef@ct.test",
            "--reveal",
            "--reason",
            "r",
        ],
        None,
    );
    assert!(!ok && err.contains("no alias"), "{err}");
    assert_eq!(
        relay.cli(&["audit", "list"])["reveals"],
        serde_json::json!([]),
        "nothing shown, nothing audited"
    );

    let reason = "the buyer asked for a copy (ticket 4711)";
    let revealed = relay.cli(&["alias", "show", &alias, "--reveal", "--reason", reason]);
    assert_eq!(revealed["email"], REAL);
    let audit = relay.cli(&["audit", "list"]);
    let entries = audit["reveals"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    let entry = &entries[0];
    assert_eq!(entry["alias"], alias.as_str());
    assert_eq!(entry["store"], "acme");
    assert_eq!(entry["order"], "9201-01");
    assert_eq!(entry["reason"], reason);
    assert!(
        entry["actor"].as_str().unwrap().starts_with("cli:"),
        "{entry}"
    );
    assert!(entry["at"].as_str().unwrap().ends_with('Z'), "{entry}");
    assert!(
        !audit.to_string().contains(REAL),
        "the audit holds no address"
    );

    relay.cli(&[
        "alias",
        "show",
        &alias,
        "--reveal",
        "--reason",
        "second look",
    ]);
    let audit = relay.cli(&["audit", "list", "--limit", "1"]);
    let entries = audit["reveals"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["reason"], "second look", "newest first");
}

/// Over the API: a reason is required, the token is named in the audit by
/// fingerprint, and a token limited to one store cannot reveal another's.
async fn the_api_reveals_for_a_reason_within_the_tokens_store(backend: Backend) {
    let mut relay = Relay::with_smarthost(backend, "127.0.0.1:9".parse().unwrap());
    let acme = relay.create_alias("acme", "9211-01", "customer", REAL);
    let other = relay.create_alias("shop2", "9212-01", "customer", "other@example.com");
    relay.start().await;
    let path = |alias: &str| format!("/v1/aliases/{alias}/reveal");

    let r = send_json(
        relay.api,
        "POST",
        &path(&acme),
        Some(ACME_TOKEN),
        r#"{"reason": "chargeback 88"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["email"], REAL);
    assert_eq!(r.json()["alias"]["alias"], acme.as_str());

    // No reason, an empty one, broken JSON: refused, nothing audited.
    for body in ["{}", r#"{"reason": " "}"#, "{"] {
        let r = send_json(relay.api, "POST", &path(&acme), Some(ACME_TOKEN), body).await;
        assert!(matches!(r.status, 400 | 422), "{body}: {}", r.status);
        assert!(r.json()["error"].is_string());
    }
    // Another store's alias: not found for acme's token; no token: 401.
    let r = send_json(
        relay.api,
        "POST",
        &path(&other),
        Some(ACME_TOKEN),
        r#"{"reason": "x"}"#,
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(!String::from_utf8_lossy(&r.body).contains("other@example.com"));
    let r = send_json(relay.api, "POST", &path(&other), None, r#"{"reason": "x"}"#).await;
    assert_eq!(r.status, 401);
    let r = send_json(
        relay.api,
        "POST",
        &path(&other),
        Some(ADMIN_TOKEN),
        r#"{"reason": "court order"}"#,
    )
    .await;
    assert_eq!(r.json()["email"], "other@example.com");

    let audit = relay.cli(&["audit", "list"]);
    let entries = audit["reveals"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{audit}");
    assert_eq!(entries[0]["reason"], "court order");
    assert!(
        entries[0]["actor"].as_str().unwrap().starts_with("api:*:"),
        "{audit}"
    );
    assert_eq!(entries[1]["alias"], acme.as_str());
    assert!(
        entries[1]["actor"]
            .as_str()
            .unwrap()
            .starts_with("api:acme:"),
        "{audit}"
    );
    let text = audit.to_string();
    assert!(
        !text.contains(ACME_TOKEN) && !text.contains(ADMIN_TOKEN),
        "no token in the audit"
    );
}

on_both_backends!(
    the_real_address_is_shown_only_when_revealed_and_audited,
    the_api_reveals_for_a_reason_within_the_tokens_store
);
