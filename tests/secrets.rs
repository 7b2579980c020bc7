//! Secrets: the HMAC key and API tokens can come from files, are never
//! written to the log, and the HMAC key can be rotated: aliases made with a
//! key listed in `alias.retired_hmac_keys` keep working.

mod common;

use std::time::Duration;

use common::http::get;
use common::{wait_until, Backend, Relay, Sink, SmtpClient, ADMIN_TOKEN, TEST_KEY};

const NEW_KEY: &str = "hex:f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f";

async fn rcpt(relay: &Relay, alias: &str) -> String {
    let mut c = SmtpClient::ready(relay.smtp).await;
    assert_eq!(c.cmd("MAIL FROM:<shop@example.org>").await.code, 250);
    c.cmd(&format!("RCPT TO:<{alias}>")).await.status()
}

async fn rotated_keys_keep_old_aliases_working(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let old = relay.create_alias("acme", "2001-01", "customer", "old@example.com");
    relay.set_env("CT_RELAY__ALIAS__HMAC_KEY", NEW_KEY);
    relay.set_env("CT_RELAY__ALIAS__RETIRED_HMAC_KEYS", TEST_KEY);
    let new = relay.create_alias("acme", "2001-01", "customer", "new@example.com");
    relay.start().await;
    assert_eq!(rcpt(&relay, &old).await, "250 2.1.5");
    assert_eq!(rcpt(&relay, &new).await, "250 2.1.5");
    let mut c = SmtpClient::ready(relay.smtp).await;
    let message =
        format!("From: shop@example.org\r\nTo: {old}\r\nSubject: still here\r\n\r\nhi\r\n");
    assert_eq!(
        c.send_mail("shop@example.org", &[&old], &message)
            .await
            .code,
        250
    );
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 1).await);
    relay.terminate();

    // Retired no more: the old key's aliases are refused like any bad tag.
    let mut relay = relay.another_node();
    relay.unset_env("CT_RELAY__ALIAS__RETIRED_HMAC_KEYS");
    relay.start().await;
    assert_eq!(rcpt(&relay, &old).await, "550 5.1.1");
    assert_eq!(rcpt(&relay, &new).await, "250 2.1.5");
}

async fn secrets_come_from_files_and_stay_out_of_the_log(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let key_file = relay.dir.path().join("hmac.key");
    let token_file = relay.dir.path().join("api.token");
    std::fs::write(&key_file, format!("{TEST_KEY}\n")).unwrap();
    std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).unwrap();
    relay.edit_config(
        &format!("hmac_key = \"{TEST_KEY}\""),
        &format!("hmac_key_file = \"{}\"", key_file.display()),
    );
    relay.edit_config(
        &format!("token = \"{ADMIN_TOKEN}\""),
        &format!("token_file = \"{}\"", token_file.display()),
    );
    // The key from the file makes the reference's vector.
    let alias = relay.create_alias(
        "acme",
        "1234567890123-01",
        "customer",
        "JohnDoe@Example.COM",
    );
    assert_eq!(alias, "f44789d54cb7909fb48a75629fbe7cfa@ct.test");
    relay.set_env("RUST_LOG", "debug");
    relay.start().await;
    assert_eq!(
        get(relay.api, "/v1/stores/acme/settings", Some(ADMIN_TOKEN))
            .await
            .status,
        200
    );
    assert_eq!(rcpt(&relay, &alias).await, "250 2.1.5");
    assert_eq!(
        rcpt(&relay, "00000000000000000000000000000000@ct.test").await,
        "550 5.1.1"
    );
    let log = relay.log();
    assert!(!log.is_empty());
    for secret in [&TEST_KEY[4..], ADMIN_TOKEN, "000102030405"] {
        assert!(!log.contains(secret), "a secret in the log");
    }

    // Both the value and the file: refused, naming both.
    let both = relay
        .another_node()
        .env("CT_RELAY__ALIAS__HMAC_KEY", TEST_KEY);
    let (ok, _, err) = both.cli_raw(&["serve"], None);
    assert!(
        !ok && err.contains("alias.hmac_key or alias.hmac_key_file"),
        "{err}"
    );
}

on_both_backends!(
    rotated_keys_keep_old_aliases_working,
    secrets_come_from_files_and_stay_out_of_the_log,
);
