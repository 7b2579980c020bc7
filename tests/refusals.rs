//! RCPT refusals of docs/REFERENCE.md ("SMTP replies"), over a real socket.

mod common;

use common::{Backend, Relay, Sink, SmtpClient};

async fn rcpt(c: &mut SmtpClient, address: &str) -> String {
    c.cmd(&format!("RCPT TO:<{address}>")).await.status()
}

async fn relaying_and_dead_aliases_are_refused_with_one_text(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let live = relay.create_alias("acme", "4004-01", "customer", "live@example.net");
    let disabled = relay.create_alias("acme", "4004-01", "customer", "gone@example.net");
    let shown = relay.cli(&["alias", "disable", &disabled]);
    assert_eq!(shown["disabled"], true);
    relay.start().await;

    let mut c = SmtpClient::ready(relay.smtp).await;
    assert_eq!(c.cmd("MAIL FROM:<sender@example.org>").await.code, 250);
    assert_eq!(rcpt(&mut c, "someone@example.com").await, "550 5.7.1");
    assert_eq!(
        rcpt(&mut c, "someone@ct.test.evil.example").await,
        "550 5.7.1"
    );
    c.cmd("QUIT").await;

    let mut c = SmtpClient::ready(relay.smtp).await;
    assert_eq!(c.cmd("MAIL FROM:<sender@example.org>").await.code, 250);

    // A well-formed alias (a vector of docs/REFERENCE.md) that was never created here.
    let unknown = c
        .cmd("RCPT TO:<f44789d54cb7909fb48a75629fbe7cfa@ct.test>")
        .await;
    assert_eq!(unknown.status(), "550 5.1.1");
    // One character off: the tag does not verify.
    let mut bad_tag = live.clone();
    bad_tag.replace_range(31..32, if &live[31..32] == "0" { "1" } else { "0" });
    let bad = c.cmd(&format!("RCPT TO:<{bad_tag}>")).await;
    let gone = c.cmd(&format!("RCPT TO:<{disabled}>")).await;
    let soft_bad = c
        .cmd("RCPT TO:<JohnDoe@example.com-4e818166b1cd1.ct.test>")
        .await;
    for r in [&bad, &gone, &soft_bad] {
        assert_eq!(
            r, &unknown,
            "unknown, disabled and bad-tag aliases must look the same"
        );
    }
    // Case does not matter for a live alias.
    assert_eq!(rcpt(&mut c, &live.to_uppercase()).await, "250 2.1.5");
    // Four refusals stay under the session's error limit (5).
    assert_eq!(c.cmd("NOOP").await.code, 250);
}

async fn expired_alias_is_refused(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr).env("CT_RELAY__ALIAS__TTL", "1s");
    let alias = relay.create_alias("acme", "5005-01", "customer", "short@example.net");
    let shown = relay.cli(&["alias", "show", &alias]);
    assert_eq!(shown["active"], true);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    relay.start().await;
    let mut c = SmtpClient::ready(relay.smtp).await;
    c.cmd("MAIL FROM:<a@example.org>").await;
    assert_eq!(rcpt(&mut c, &alias).await, "550 5.1.1");
    assert_eq!(relay.cli(&["alias", "show", &alias])["active"], false);

    // Purge removes it (and with it the real address) once past retention.
    assert_eq!(
        relay.cli(&["purge"])["aliases"],
        0,
        "kept for expired_alias_retention"
    );
    relay.set_env("CT_RELAY__STORAGE__EXPIRED_ALIAS_RETENTION", "0s");
    assert_eq!(relay.cli(&["purge"])["aliases"], 1);
    let (ok, _, err) = relay.cli_raw(&["alias", "show", &alias], None);
    assert!(!ok && err.contains("no alias"), "{err}");
}

/// Refusals written to timelines are rate-limited per client address: past
/// smtp.max_refusals_per_ip_per_minute the client is told to come back
/// (450 4.7.1) and nothing more is written, across sessions.
async fn refusals_per_client_address_are_rate_limited(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr)
        .env("CT_RELAY__SMTP__MAX_REFUSALS_PER_IP_PER_MINUTE", "5");
    let alias = relay.create_alias("acme", "5006-01", "customer", "gone@example.net");
    relay.cli(&["alias", "disable", &alias]);
    relay.start().await;
    let mut replies = Vec::new();
    for _ in 0..2 {
        let mut c = SmtpClient::ready(relay.smtp).await;
        c.cmd("MAIL FROM:<a@example.org>").await;
        for _ in 0..4 {
            replies.push(rcpt(&mut c, &alias).await);
        }
    }
    assert_eq!(replies[..5], ["550 5.1.1"; 5], "{replies:?}");
    assert_eq!(replies[5..], ["450 4.7.1"; 3], "{replies:?}");
    let timeline = relay.timeline("5006-01");
    assert_eq!(timeline["entries"][0]["repeats"], 5, "{timeline}");
    assert_eq!(timeline["entries"].as_array().unwrap().len(), 1);
}

async fn limits_and_sequence_errors(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let aliases: Vec<String> = (0..6)
        .map(|i| relay.create_alias("acme", "6006-01", "customer", &format!("c{i}@example.net")))
        .collect();
    relay.start().await;

    let (mut c, greeting) = SmtpClient::connect(relay.smtp).await;
    assert_eq!(greeting.code, 220);
    assert_eq!(greeting.text, "relay.test ESMTP");
    assert_eq!(
        c.cmd("MAIL FROM:<a@example.org>").await.status(),
        "503 5.5.1"
    );
    assert_eq!(c.cmd("EHLO client.test").await.code, 250);
    assert_eq!(c.cmd("RCPT TO:<x@ct.test>").await.status(), "503 5.5.1");
    assert_eq!(
        c.cmd("MAIL FROM:<a@example.org> SIZE=2000000")
            .await
            .status(),
        "552 5.3.4"
    );
    assert_eq!(
        c.cmd("MAIL FROM:<a@example.org> SIZE=1000").await.status(),
        "250 2.1.0"
    );
    for a in &aliases[..5] {
        assert_eq!(rcpt(&mut c, a).await, "250 2.1.5");
    }
    assert_eq!(rcpt(&mut c, &aliases[5]).await, "452 4.5.3");
    assert_eq!(c.cmd("RSET").await.code, 250);
    assert_eq!(c.cmd("QUIT").await.status(), "221 2.0.0");

    // Too many errors: 421 4.7.0 and the connection is closed.
    let mut c = SmtpClient::ready(relay.smtp).await;
    for _ in 0..4 {
        assert_eq!(c.cmd("BOGUS").await.status(), "500 5.5.2");
    }
    assert_eq!(c.cmd("BOGUS").await.status(), "421 4.7.0");
    assert!(c.reply().await.is_none(), "connection must be closed");
}

async fn alias_cli_validates_and_is_idempotent(backend: Backend) {
    let relay = Relay::with_smarthost(backend, common::free_port());
    let create = |email: &str| {
        relay.cli(&[
            "alias", "create", "--store", "acme", "--order", "7007-01", "--email", email,
        ])
    };
    let (a, b) = (create("X@Example.com"), create("x@example.COM"));
    assert_eq!(a, b, "same participant, same alias and row");
    assert_eq!(a["mode"], "hard");

    let (ok, _, err) = relay.cli_raw(
        &[
            "alias", "create", "--store", "acme", "--order", "1", "--email", "nope",
        ],
        None,
    );
    assert!(!ok);
    assert!(err.contains("`nope` is not an e-mail address"), "{err}");
    let (ok, _, err) = relay.cli_raw(
        &[
            "alias",
            "create",
            "--store",
            "acme",
            "--order",
            "1",
            "--email",
            "a@x.ct.test",
        ],
        None,
    );
    assert!(!ok && err.contains("alias domain"), "{err}");

    let input = "{\"store\":\"acme\",\"order\":\"8\",\"role\":\"customer\",\"email\":\"a@b.example\"}\n\
                 not json\n\
                 \n\
                 {\"store\":\"acme\",\"order\":\"8\",\"role\":\"boss\",\"email\":\"a@b.example\"}\n\
                 {\"store\":\"acme\",\"order\":\"8\",\"role\":\"store\",\"email\":\"s@b.example\",\"mode\":\"soft\"}\n";
    let (ok, out, _) = relay.cli_raw(&["alias", "import"], Some(input));
    assert!(!ok, "exit status says some lines failed");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["line"], 1);
    assert!(lines[0]["alias"].as_str().unwrap().ends_with("@ct.test"));
    assert_eq!(lines[1]["line"], 2);
    assert!(lines[1]["error"].as_str().unwrap().contains("invalid JSON"));
    assert_eq!(lines[2]["line"], 4);
    assert!(lines[2]["error"].is_string());
    assert_eq!(lines[3]["line"], 5);
    assert_eq!(lines[3]["mode"], "soft");
    assert_eq!(
        lines[3]["alias"]
            .as_str()
            .unwrap()
            .split('-')
            .next()
            .unwrap(),
        "s@b.example"
    );

    let store = relay.cli(&["store", "show", "acme"]);
    assert_eq!(store["mask_mode"], "hard");
    assert_eq!(store["configured"], false);
    let (ok, _, err) = relay.cli_raw(&["store", "set-mode", "acme", "medium"], None);
    assert!(
        !ok && err.contains("'medium'") && err.contains("possible values: hard, soft"),
        "{err}"
    );
}

on_both_backends!(
    relaying_and_dead_aliases_are_refused_with_one_text,
    expired_alias_is_refused,
    refusals_per_client_address_are_rate_limited,
    limits_and_sequence_errors,
    alias_cli_validates_and_is_idempotent,
);
