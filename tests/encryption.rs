//! Encryption at rest: with `storage.encryption_key` set, no real address
//! and no word of a message is in the database in clear (the SQLite file
//! read byte by byte, every PostgreSQL text and bytea column), yet
//! timelines, exports and deliveries read as before; `keys rotate` seals
//! a database written in clear, and moves it from one key to the next
//! while the relay serves; a value under a key no longer configured is a
//! clear error naming that key, never garbage; the key is never logged.

mod common;

use std::time::Duration;

use common::http::get;
use common::{wait_until, Backend, Relay, Sink, SmtpClient, ADMIN_TOKEN, TEST_ENCRYPTION_KEY};

const SHOP: &str = "sac@acme-store.com";
const PERSON: &str = "maria.silva@example.com";
const SECRET_WORDS: &str = "Codigo de rastreio ZX4711";
const SECRET_SUBJECT: &str = "Pedido confidencial";
const K2: &str = "hex:a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2";
const KEY_ENV: &str = "CT_RELAY__STORAGE__ENCRYPTION_KEY";
const OLD_KEYS_ENV: &str = "CT_RELAY__STORAGE__ENCRYPTION_OLD_KEYS";

async fn send(relay: &Relay, to: &str, n: usize) {
    let message = format!(
        "From: <{SHOP}>\r\nTo: <{to}>\r\nSubject: {SECRET_SUBJECT} {n}\r\n\r\n{SECRET_WORDS}.\r\n"
    );
    let mut c = SmtpClient::ready(relay.smtp).await;
    assert_eq!(c.send_mail(SHOP, &[to], &message).await.code, 250);
}

/// The needles (lowercase) found in the database, where.
async fn in_clear(relay: &Relay, backend: Backend) -> Vec<String> {
    let needles = [
        PERSON.to_string(),
        SHOP.to_string(),
        SECRET_WORDS.to_lowercase(),
        SECRET_SUBJECT.to_lowercase(),
    ];
    common::storage::found_in_database(relay, backend, &needles).await
}

async fn sealed_at_rest_and_rotated_while_serving(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    // First in clear, as a database from before encryption.
    relay.set_env(KEY_ENV, "");
    let alias = relay.create_alias("acme", "9701-01", "customer", PERSON);
    relay.start().await;
    send(&relay, &alias, 1).await;
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 1).await);
    assert!(
        !in_clear(&relay, backend).await.is_empty(),
        "the check finds clear text"
    );
    relay.terminate();

    // Turn encryption on and seal what is there, while serving.
    relay.unset_env(KEY_ENV);
    relay.start().await;
    let rotated = relay.cli(&["keys", "rotate", "--batch", "2"]);
    assert!(rotated["resealed"].as_u64().unwrap() >= 4, "{rotated}");
    assert_eq!(rotated["left"], 0, "{rotated}");
    send(&relay, &alias, 2).await;
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 2).await);
    let again = relay.cli(&["keys", "rotate"]);
    assert_eq!(
        again["resealed"], 0,
        "new mail is sealed as written: {again}"
    );
    let found = in_clear(&relay, backend).await;
    assert!(found.is_empty(), "in clear: {found:?}");
    // Mail arrives as sent, and everything reads back.
    let got = &sink.received()[1];
    assert_eq!(got.rcpt_to, [PERSON.to_string()]);
    assert!(got.text().contains(SECRET_WORDS));
    let timeline = relay.timeline("9701-01");
    assert_eq!(
        timeline["entries"][0]["subject"],
        format!("{SECRET_SUBJECT} 1")
    );
    assert_eq!(
        timeline["entries"][1]["first_words"],
        SECRET_WORDS.to_string() + "."
    );
    let export = get(
        relay.api,
        &format!("/v1/subjects/{PERSON}"),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(
        export.json()["orders"][0]["aliases"][0]["alias"],
        alias.as_str()
    );
    let message_id = timeline["entries"][0]["id"].as_str().unwrap().to_string();
    let stored = get(
        relay.api,
        &format!("/v1/messages/{message_id}"),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert!(String::from_utf8_lossy(&stored.body).contains(SECRET_WORDS));
    relay.terminate();

    // Next key: the old one stays readable until the rotation ends.
    relay.set_env(KEY_ENV, K2);
    relay.set_env(OLD_KEYS_ENV, TEST_ENCRYPTION_KEY);
    relay.start().await;
    send(&relay, &alias, 3).await;
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 3).await);
    let rotated = relay.cli(&["keys", "rotate"]);
    assert!(rotated["resealed"].as_u64().unwrap() >= 8, "{rotated}");
    assert_eq!(rotated["left"], 0);
    relay.terminate();
    relay.unset_env(OLD_KEYS_ENV);
    relay.start().await;
    let timeline = relay.timeline("9701-01");
    assert_eq!(
        timeline["entries"][2]["subject"],
        format!("{SECRET_SUBJECT} 3")
    );
    send(&relay, &alias, 4).await;
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 4).await);
    assert!(in_clear(&relay, backend).await.is_empty());
    relay.terminate();

    // Without the key the data is sealed under: an error naming the key.
    relay.set_env(KEY_ENV, TEST_ENCRYPTION_KEY);
    let (ok, _, err) = relay.cli_raw(&["timeline", "9701-01"], None);
    assert!(!ok);
    assert!(err.contains("not configured"), "{err}");
    assert!(err.contains("storage.encryption_old_keys"), "{err}");
    // A malformed key is refused before anything is read.
    relay.set_env(KEY_ENV, "hex:1234");
    let (ok, _, err) = relay.cli_raw(&["timeline", "9701-01"], None);
    assert!(!ok);
    assert!(err.contains("storage.encryption_key"), "{err}");

    let log = relay.log();
    for key in [TEST_ENCRYPTION_KEY, K2] {
        assert!(
            !log.contains(key.trim_start_matches("hex:")),
            "a key is logged"
        );
    }
}

on_both_backends!(sealed_at_rest_and_rotated_while_serving);
