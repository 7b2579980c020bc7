//! Audited unmasking: `alias show` prints a participant's real address only
//! with `--reveal` and a `--reason`, and every reveal is in the audit
//! (`audit list`) with who asked, when, which alias and why.

mod common;

use common::{Backend, Relay};

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

on_both_backends!(the_real_address_is_shown_only_when_revealed_and_audited);
