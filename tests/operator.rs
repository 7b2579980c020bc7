//! What an operator runs into (README, "Operating it"): the queue commands
//! (list as a table, retry attempted by the command itself, hold, release,
//! delete), API tokens reloaded on SIGHUP, failed logins limited per
//! client address, data files private to the relay, lowercase store ids,
//! a misspelled configuration key named with its file and line, and a
//! delivery lease too short to start with.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::http::{get, request_with, send_json};
use common::{wait_until, Backend, Relay, Sink, SinkReply, SmtpClient, ADMIN_TOKEN};

const SHOP: &str = "sac@acme-store.com";

/// A message from the shop to a new buyer of `order`; the buyer's alias.
async fn send_to_buyer(relay: &Relay, order: &str) -> String {
    let shop = relay.create_alias("acme", order, "store", SHOP);
    assert!(shop.ends_with("@ct.test"));
    let alias = relay.create_alias(
        "acme",
        order,
        "customer",
        &format!("buyer-{order}@example.com"),
    );
    let message = format!("From: <{SHOP}>\r\nTo: <{alias}>\r\nSubject: {order}\r\n\r\nHi.\r\n");
    let mut c = SmtpClient::ready(relay.smtp).await;
    assert_eq!(c.send_mail(SHOP, &[&alias], &message).await.code, 250);
    alias
}

/// Wait until the order's only delivery is in `state`.
async fn wait_for_state(relay: &Relay, order: &str, state: &str) {
    let reached = wait_until(Duration::from_secs(10), || {
        relay.delivery_states(order) == [state]
    });
    assert!(reached.await, "{:?}", relay.delivery_states(order));
}

/// The order's only delivery id, once it is waiting in `state`.
async fn delivery_in(relay: &Relay, order: &str, state: &str) -> String {
    wait_for_state(relay, order, state).await;
    let list = relay.cli(&["queue", "list", "--store", "acme"]);
    let found = list["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["order"] == order)
        .unwrap_or_else(|| panic!("{order} not in {list}"))
        .clone();
    found["id"].as_str().unwrap().to_string()
}

async fn queue_commands_hold_release_delete_and_retry_at_once(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    // Retries far apart: only the commands make a delivery go early.
    relay.edit_config("retry_initial = \"200ms\"", "retry_initial = \"1h\"");
    relay.edit_config("retry_max = \"1s\"", "retry_max = \"2h\"");
    relay.start().await;

    // Held: the next hop is back, but a held delivery is not attempted.
    sink.script(&[SinkReply::Reply("451 4.3.0 try later".into())]);
    let alias = send_to_buyer(&relay, "q-hold").await;
    let id = delivery_in(&relay, "q-hold", "retrying").await;
    assert_eq!(relay.cli(&["queue", "hold", &id])["held"], true);
    let (ok, text, _) = relay.cli_raw(&["queue", "list", "--format", "text"], None);
    assert!(ok);
    let block = text.split(&id).nth(1).expect("the delivery is listed");
    assert!(block.trim_start().starts_with("held"), "{text}");
    assert!(text.contains(&format!("to {alias}")), "{text}");
    assert!(text.contains("(451 4.3.0 try later)"), "{text}");
    assert!(text.contains("(1 held)"), "{text}");
    let shop_alias = relay.timeline("q-hold")["entries"][0]["from"]["email_alias"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains(&format!("from {shop_alias}")), "{text}");
    assert!(!text.contains("example.com"), "aliases only: {text}");
    // A release makes it due at once, though its retry was an hour away.
    assert_eq!(relay.cli(&["queue", "release", &id])["released"], true);
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 1).await);
    wait_for_state(&relay, "q-hold", "delivered").await;
    let (ok, _, err) = relay.cli_raw(&["queue", "hold", &id], None);
    assert!(!ok && err.contains("is not waiting"), "{err}");

    // Deleted: ends failed on the timeline, never attempted, no notice.
    sink.script(&[SinkReply::Reply("451 4.3.0 try later".into())]);
    send_to_buyer(&relay, "q-delete").await;
    let id = delivery_in(&relay, "q-delete", "retrying").await;
    assert_eq!(relay.cli(&["queue", "delete", &id])["deleted"], true);
    let delivery = &relay.timeline("q-delete")["entries"][0]["deliveries"][0];
    assert_eq!(delivery["state"], "failed");
    assert!(
        delivery["last_reply"]
            .as_str()
            .unwrap()
            .contains("deleted from the queue by an operator"),
        "{delivery}"
    );
    let (ok, _, err) = relay.cli_raw(&["queue", "delete", &id], None);
    assert!(!ok && err.contains("is not waiting"), "{err}");
    let (ok, _, err) = relay.cli_raw(&["queue", "release", "01NOSUCHDELIVERY"], None);
    assert!(
        !ok && err.contains("no delivery `01NOSUCHDELIVERY`"),
        "{err}"
    );

    // Retry: with the relay stopped, the command attempts it itself.
    sink.script(&[SinkReply::Reply("451 4.3.0 try later".into())]);
    send_to_buyer(&relay, "q-retry").await;
    let id = delivery_in(&relay, "q-retry", "retrying").await;
    relay.terminate();
    let before = sink.received().len();
    let out = relay.cli(&["queue", "retry", &id]);
    assert_eq!(out["attempted"], true, "{out}");
    assert_eq!(out["delivery"]["state"], "delivered", "{out}");
    assert_eq!(out["delivery"]["attempts"], 2, "{out}");
    assert_eq!(sink.received().len(), before + 1);
    assert_eq!(
        sink.received().len(),
        2,
        "the deleted one never went: {}",
        sink.received().len()
    );
}

async fn api_tokens_are_reloaded_on_sighup(backend: Backend) {
    let mut relay = Relay::with_smarthost(backend, common::free_port());
    relay.start().await;
    let new_token = "rotated-admin-token-0123456789";
    assert_eq!(
        get(relay.api, "/v1/stores/acme/settings", Some(ADMIN_TOKEN))
            .await
            .status,
        200
    );
    relay.edit_config(ADMIN_TOKEN, new_token);
    hup(&relay);
    let reloaded = async {
        for _ in 0..50 {
            if get(relay.api, "/v1/stores/acme/settings", Some(new_token))
                .await
                .status
                == 200
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    assert!(reloaded.await, "{}", relay.log());
    assert_eq!(
        get(relay.api, "/v1/stores/acme/settings", Some(ADMIN_TOKEN))
            .await
            .status,
        401
    );
    assert!(relay.log().contains("SIGHUP: API tokens reloaded"));

    // A configuration that no longer loads changes nothing.
    relay.edit_config("[smtp]", "[smtp]\nmax_recipents = 5");
    hup(&relay);
    assert!(
        wait_until(Duration::from_secs(5), || relay
            .log()
            .contains("the configuration does not load"))
        .await
    );
    assert_eq!(
        get(relay.api, "/v1/stores/acme/settings", Some(new_token))
            .await
            .status,
        200
    );
}

fn hup(relay: &Relay) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &relay.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn failed_logins_are_limited_per_client_address(backend: Backend) {
    let mut relay = Relay::with_smarthost(backend, common::free_port());
    relay.edit_config("[api]", "[api]\nmax_auth_failures_per_minute = 4");
    relay.start().await;
    for _ in 0..4 {
        let r = get(
            relay.api,
            "/v1/stores/acme/settings",
            Some("wrong-token-0123456789"),
        )
        .await;
        assert_eq!(r.status, 401);
    }
    // Past the limit even the right token waits out the minute.
    let r = get(relay.api, "/v1/stores/acme/settings", Some(ADMIN_TOKEN)).await;
    assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"], "too_many_requests");
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let r = send_json(relay.api, "GET", "/v1/stores/acme/settings", None, "").await;
    assert_eq!(r.status, 429, "no token at all counts the same");
    // The console's login form shares the count.
    let r = request_with(
        relay.api,
        "POST",
        "/console/login",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("cookie", "ct_console_login=abc"),
        ],
        b"csrf=abc&token=admin-token-for-tests-0123456789",
    )
    .await;
    assert_eq!(r.status, 429);
    assert!(String::from_utf8_lossy(&r.body).contains("Too many failed logins"));
    let log = relay.log();
    assert!(
        log.contains("API token refused") && log.contains("127.0.0.1"),
        "the log names the client: {log}"
    );
    assert!(
        log.contains("refused (429) for the rest of its minute"),
        "{log}"
    );
    assert!(
        !log.contains("wrong-token-0123456789"),
        "no token in the log"
    );
    // Health and metrics need no token and are not limited.
    assert_eq!(get(relay.api, "/healthz", None).await.status, 200);
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread")]
async fn data_files_are_the_relays_alone() {
    // SQLite and the file transport, in folders the relay makes itself.
    let mut relay = Relay::configured(None, "transport = \"file\"");
    let data = relay.dir.path().join("data");
    relay.edit_config(
        &format!("sqlite://{}", relay.db_path().display()),
        &format!("sqlite://{}", data.join("relay.db").display()),
    );
    relay.edit_config(
        &format!("dir = \"{}\"", relay.outbox().display()),
        &format!("dir = \"{}\"", data.join("outbox").display()),
    );
    relay.start().await;
    send_to_buyer(&relay, "files-1").await;
    let outbox = data.join("outbox");
    let written = wait_until(Duration::from_secs(10), || {
        std::fs::read_dir(&outbox).is_ok_and(|d| d.count() == 2)
    });
    assert!(written.await);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&outbox), 0o700);
    for name in ["relay.db", "relay.db-wal", "relay.db-shm"] {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }
    for file in std::fs::read_dir(&outbox).unwrap() {
        let path = file.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
}

async fn store_ids_are_lowercase(backend: Backend) {
    let mut relay = Relay::with_smarthost(backend, common::free_port());
    relay.start().await;
    let (ok, _, err) = relay.cli_raw(
        &[
            "alias",
            "create",
            "--store",
            "ACME",
            "--order",
            "o-1",
            "--email",
            "b@example.com",
        ],
        None,
    );
    assert!(!ok);
    assert!(err.contains("store id `ACME` must be lowercase"), "{err}");
    assert!(err.contains("use `acme`"), "{err}");
    let r = send_json(
        relay.api,
        "POST",
        "/v1/orders/o-1/aliases",
        Some(ADMIN_TOKEN),
        r#"{"store":"ACME","customer_email":"b@example.com"}"#,
    )
    .await;
    assert!((400..500).contains(&r.status), "{}", r.status);
    assert!(r.json()["message"].as_str().unwrap().contains("lowercase"));
    assert_eq!(relay.cli(&["store", "show", "acme"])["store"], "acme");
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_names_a_misspelled_key_with_its_file_and_line() {
    let relay = Relay::configured(None, "transport = \"file\"");
    relay.edit_config("max_recipients = 5", "max_recipents = 5");
    let line = common::read(&relay.config)
        .lines()
        .position(|l| l.starts_with("max_recipents"))
        .unwrap()
        + 1;
    let (ok, _, err) = relay.cli_raw(&["serve"], None);
    assert!(!ok);
    let place = format!("{}:{line}", relay.config.display());
    assert!(err.contains(&place), "{err}");
    assert!(err.contains("smtp.max_recipents"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_refuses_a_lease_shorter_than_eleven_timeouts() {
    // The test relays' delivery.timeout is 500ms: 5s is under 11 of them.
    let relay =
        Relay::configured(None, "transport = \"file\"").env("CT_RELAY__DELIVERY__LEASE", "5s");
    let (ok, _, err) = relay.cli_raw(&["serve"], None);
    assert!(!ok, "serve must not start");
    assert!(err.contains("CT_RELAY__DELIVERY__LEASE"), "{err}");
    assert!(err.contains("must exceed 11 × delivery.timeout"), "{err}");
    assert!(std::net::TcpStream::connect(relay.smtp).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_variable_with_one_underscore_is_reported() {
    let relay =
        Relay::configured(None, "transport = \"file\"").env("CT_RELAY_SMTP__MAX_RECIPIENTS", "7");
    let (ok, out, err) = relay.cli_raw(&["store", "show", "acme"], None);
    assert!(ok, "{err}");
    assert!(out.contains("\"acme\""), "{out}");
    assert!(
        err.contains("CT_RELAY_SMTP__MAX_RECIPIENTS is not read"),
        "{err}"
    );
}

on_both_backends!(
    queue_commands_hold_release_delete_and_retry_at_once,
    api_tokens_are_reloaded_on_sighup,
    failed_logins_are_limited_per_client_address,
    store_ids_are_lowercase,
);
