//! Failure paths: the next hop answering 4xx/5xx, the relay killed after a
//! 250 or during delivery, the database locked, clients leaving mid-DATA,
//! and a graceful stop.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, wait_until, Backend, Relay, Sink, SinkReply, SmtpClient};

const REAL: &str = "JohnDoe@Example.COM";

/// Start the relay (again) and wait until its one message is delivered.
async fn restart_delivers(relay: &mut Relay, sink: &Sink, order: &str) {
    relay.start().await;
    let got = wait_until(Duration::from_secs(15), || sink.received().len() == 1).await;
    assert!(got, "{}", relay.log());
    assert!(
        wait_until(Duration::from_secs(5), || relay.delivery_states(order)
            == ["delivered"])
        .await
    );
}

fn message(n: usize) -> String {
    format!("From: sac@acme-store.com\r\nSubject: message {n}\r\n\r\nBody {n}.\r\n")
}

async fn send_one(relay: &Relay, alias: &str, n: usize) -> String {
    let mut c = SmtpClient::ready(relay.smtp).await;
    let r = c
        .send_mail("sac@acme-store.com", &[alias], &message(n))
        .await;
    assert_eq!(r.status(), "250 2.0.0", "{r:?}");
    r.text.rsplit(' ').next().unwrap().to_string()
}

async fn temporary_failure_is_retried_then_delivered(backend: Backend) {
    let sink = Sink::start().await;
    sink.script(&[SinkReply::Reply("451 4.3.0 try again later".into())]);
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let alias = relay.create_alias("acme", "9001-01", "customer", REAL);
    relay.start().await;
    send_one(&relay, &alias, 1).await;

    assert!(
        wait_until(Duration::from_secs(15), || sink.received().len() == 1).await,
        "{}",
        relay.log()
    );
    assert_eq!(sink.attempts(), 2);
    assert!(
        wait_until(Duration::from_secs(5), || relay.delivery_states("9001-01")
            == ["delivered"])
        .await
    );
    let d = &relay.timeline("9001-01")["entries"][0]["deliveries"][0];
    assert_eq!(d["attempts"], 2);
    assert!(d["last_reply"].as_str().unwrap().starts_with("250"), "{d}");
}

async fn permanent_failure_marks_the_delivery_failed_without_leaking_the_address(backend: Backend) {
    let sink = Sink::start().await;
    sink.script(&[SinkReply::Reply(format!(
        "550 5.1.1 <{REAL}>: mailbox unavailable"
    ))]);
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let alias = relay.create_alias("acme", "9002-01", "customer", REAL);
    relay.start().await;
    send_one(&relay, &alias, 1).await;

    assert!(
        wait_until(Duration::from_secs(15), || relay.delivery_states("9002-01")
            == ["failed"])
        .await
    );
    let timeline = relay.timeline("9002-01");
    let d = &timeline["entries"][0]["deliveries"][0];
    assert_eq!(d["attempts"], 1);
    let reply = d["last_reply"].as_str().unwrap();
    assert!(reply.starts_with("550 5.1.1"), "{reply}");
    assert!(reply.contains(&alias), "{reply}");
    assert!(!timeline
        .to_string()
        .to_lowercase()
        .contains("johndoe@example.com"));
    assert!(
        !relay.log().to_lowercase().contains("johndoe@example.com"),
        "real address in the log"
    );
    // Not retried; the sender got the relay's notice instead, from the
    // null sender, naming the alias and not the address.
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 1).await);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(sink.attempts(), 2);
    let notice = &sink.received()[0];
    assert_eq!(notice.mail_from, "");
    assert_eq!(notice.rcpt_to, ["sac@acme-store.com"]);
    let text = notice.text();
    assert!(
        text.contains("multipart/report; report-type=delivery-status"),
        "{text}"
    );
    assert!(
        text.contains(&format!("Final-Recipient: rfc822; {alias}")),
        "{text}"
    );
    assert!(text.contains("Status: 5.1.1"), "{text}");
    assert!(
        !text.to_lowercase().contains("johndoe@example.com"),
        "{text}"
    );
    let queue = relay.cli(&["queue", "list"]);
    assert_eq!(queue["deliveries"][0]["state"], "failed");

    // An operator fixed the mailbox: retry it by hand.
    let id = queue["deliveries"][0]["id"].as_str().unwrap().to_string();
    relay.cli(&["queue", "retry", &id]);
    assert!(wait_until(Duration::from_secs(15), || sink.received().len() == 2).await);
    assert!(
        wait_until(Duration::from_secs(5), || relay.delivery_states("9002-01")
            == ["delivered"])
        .await
    );
    let (ok, _, err) = relay.cli_raw(&["queue", "retry", &id], None);
    assert!(
        !ok && err.contains("no delivery"),
        "a delivered message is not retried: {err}"
    );
}

async fn killed_after_250_the_message_is_delivered_after_restart(backend: Backend) {
    // The next hop is down while the relay runs.
    let hop = free_port();
    let mut relay = Relay::with_smarthost(backend, hop);
    let alias = relay.create_alias("acme", "9003-01", "customer", REAL);
    relay.start().await;
    send_one(&relay, &alias, 1).await;
    assert!(
        wait_until(Duration::from_secs(10), || relay.delivery_states("9003-01")
            == ["retrying"])
        .await
    );
    relay.kill();

    let sink = Sink::start_on(hop).await;
    restart_delivers(&mut relay, &sink, "9003-01").await;
    assert_eq!(sink.received()[0].rcpt_to, vec![REAL.to_string()]);
}

async fn killed_during_delivery_the_message_is_delivered_after_restart(backend: Backend) {
    let sink = Sink::start().await;
    // The first attempt gets no answer after the message: the relay dies waiting.
    sink.script(&[SinkReply::Hang]);
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let alias = relay.create_alias("acme", "9004-01", "customer", REAL);
    relay.start().await;
    send_one(&relay, &alias, 1).await;
    assert!(wait_until(Duration::from_secs(10), || sink.attempts() == 1).await);
    relay.kill();
    assert_eq!(relay.delivery_states("9004-01"), ["queued"]);

    restart_delivers(&mut relay, &sink, "9004-01").await;
    assert_eq!(sink.attempts(), 2);
}

async fn client_leaving_mid_data_leaves_nothing_behind(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let alias = relay.create_alias("acme", "9005-01", "customer", REAL);
    relay.start().await;

    let mut c = SmtpClient::ready(relay.smtp).await;
    c.cmd("MAIL FROM:<sac@acme-store.com>").await;
    c.cmd(&format!("RCPT TO:<{alias}>")).await;
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send_raw(b"Subject: half\r\n\r\nthe first half of a message")
        .await;
    drop(c);

    // The relay keeps serving; only the complete message is on the timeline.
    send_one(&relay, &alias, 2).await;
    assert!(wait_until(Duration::from_secs(15), || sink.received().len() == 1).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.received().len(), 1);
    let entries = relay.timeline("9005-01")["entries"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["subject"], "message 2");
}

/// Hold SQLite's write lock from another process, as a stuck writer would.
fn lock_database(path: &std::path::Path) -> std::process::Child {
    let script = "import sqlite3, sys\n\
                  db = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
                  db.execute('BEGIN EXCLUSIVE')\n\
                  print('locked', flush=True)\n\
                  sys.stdin.read()\n";
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    child
}

#[tokio::test(flavor = "multi_thread")]
async fn database_unavailable_gives_451_never_250_and_recovers() {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(Backend::Sqlite, sink.addr);
    let alias = relay.create_alias("acme", "9006-01", "customer", REAL);
    relay.start().await;

    let mut lock = lock_database(&relay.db_path());
    let mut c = SmtpClient::ready(relay.smtp).await;
    assert_eq!(c.cmd("MAIL FROM:<sac@acme-store.com>").await.code, 250);
    assert_eq!(c.cmd(&format!("RCPT TO:<{alias}>")).await.code, 250);
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send_raw(message(1).as_bytes()).await;
    c.send_raw(b".\r\n").await;
    let r = c.reply().await.unwrap();
    assert_eq!(r.status(), "451 4.3.0", "{r:?}");
    // /readyz says so: the database reads, but takes no write.
    let ready = common::http::get(relay.api, "/readyz", None).await;
    assert_eq!(ready.status, 503);
    let body: serde_json::Value = serde_json::from_slice(&ready.body).unwrap();
    assert_eq!(
        (&body["status"], &body["database"], &body["writable"]),
        (&"not_ready".into(), &true.into(), &false.into()),
        "{body}"
    );

    lock.kill().unwrap();
    lock.wait().unwrap();
    let ready = common::http::get(relay.api, "/readyz", None).await;
    assert_eq!(
        ready.status,
        200,
        "{}",
        String::from_utf8_lossy(&ready.body)
    );
    // Same session, no restart: the next message is accepted.
    let r = c
        .send_mail("sac@acme-store.com", &[&alias], &message(2))
        .await;
    assert_eq!(r.status(), "250 2.0.0");
    assert!(wait_until(Duration::from_secs(15), || sink.received().len() == 1).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sink.received().len(),
        1,
        "the refused message must not be delivered"
    );
    assert!(sink.received()[0].text().contains("message 2"));
    assert_eq!(
        relay.timeline("9006-01")["entries"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

async fn sigterm_closes_sessions_with_421_and_exits_cleanly(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let alias = relay.create_alias("acme", "9007-01", "customer", REAL);
    relay.start().await;
    send_one(&relay, &alias, 1).await;
    assert!(wait_until(Duration::from_secs(15), || sink.received().len() == 1).await);

    let mut idle = SmtpClient::ready(relay.smtp).await;
    let status = tokio::task::spawn_blocking(move || {
        let status = relay.terminate();
        (relay, status)
    });
    let r = idle.reply().await.expect("421 before close");
    assert_eq!(r.status(), "421 4.3.2");
    let (relay, status) = status.await.unwrap();
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        relay.log()
    );
    assert!(
        std::net::TcpStream::connect(relay.smtp).is_err(),
        "listener must be closed"
    );
}

async fn sigterm_during_delivery_returns_it_to_the_queue(backend: Backend) {
    let sink = Sink::start().await;
    sink.script(&[SinkReply::Hang]);
    let mut relay =
        Relay::with_smarthost(backend, sink.addr).env("CT_RELAY__SMTP__SHUTDOWN_GRACE", "1s");
    let alias = relay.create_alias("acme", "9008-01", "customer", REAL);
    relay.start().await;
    send_one(&relay, &alias, 1).await;
    assert!(wait_until(Duration::from_secs(10), || sink.attempts() == 1).await);

    let status = relay.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        relay
            .log()
            .contains("returned unfinished deliveries to the queue"),
        "{}",
        relay.log()
    );
    let queue = relay.cli(&["queue", "list"]);
    assert_eq!(queue["deliveries"][0]["state"], "queued");
    assert!(queue["deliveries"][0]["leased_by"].is_null(), "{queue}");

    restart_delivers(&mut relay, &sink, "9008-01").await;
}

async fn a_delivery_still_failing_after_give_up_after_fails(backend: Backend) {
    let sink = Sink::start().await;
    sink.script(&vec![SinkReply::Reply("452 4.2.2 mailbox full".into()); 50]);
    let mut relay =
        Relay::with_smarthost(backend, sink.addr).env("CT_RELAY__DELIVERY__GIVE_UP_AFTER", "1s");
    let alias = relay.create_alias("acme", "9009-01", "customer", REAL);
    relay.start().await;
    send_one(&relay, &alias, 1).await;
    assert!(
        wait_until(Duration::from_secs(15), || relay.delivery_states("9009-01")
            == ["failed"])
        .await
    );
    let d = &relay.timeline("9009-01")["entries"][0]["deliveries"][0];
    let reply = d["last_reply"].as_str().unwrap();
    assert!(
        reply.starts_with("452 4.2.2") && reply.contains("gave up after"),
        "{reply}"
    );
    assert!(d["attempts"].as_u64().unwrap() >= 2, "{d}");
    assert!(sink.received().is_empty());
}

/// Fresh mail is written leased to the node that accepted it and handed to
/// its queue runner in memory while the runner has room; the rest waits
/// unleased for a claim. With a lease far longer than the test, a delivery
/// leased but never handed over would stay stuck: every message must still
/// arrive, each exactly once.
async fn fresh_mail_is_delivered_once_whether_handed_over_or_claimed(backend: Backend) {
    let sink = Sink::start().await;
    sink.set_delay(Duration::from_millis(30));
    // One worker: room for two fresh deliveries; most messages overflow.
    let mut relay = Relay::with_smarthost(backend, sink.addr)
        .env("CT_RELAY__DELIVERY__WORKERS", "1")
        .env("CT_RELAY__DELIVERY__LEASE", "10m");
    let alias = relay.create_alias("acme", "9010-01", "customer", REAL);
    relay.start().await;
    let sessions: Vec<_> = (0..4)
        .map(|s| {
            let (smtp, alias) = (relay.smtp, alias.clone());
            tokio::spawn(async move {
                let mut c = SmtpClient::ready(smtp).await;
                for n in 0..5 {
                    let r = c
                        .send_mail("sac@acme-store.com", &[&alias], &message(s * 10 + n))
                        .await;
                    assert_eq!(r.status(), "250 2.0.0", "{r:?}");
                }
            })
        })
        .collect();
    for s in sessions {
        s.await.unwrap();
    }
    let all = wait_until(Duration::from_secs(20), || sink.received().len() >= 20).await;
    assert!(
        all,
        "{} of 20 delivered\n{}",
        sink.received().len(),
        relay.log()
    );
    assert!(
        wait_until(Duration::from_secs(5), || relay
            .delivery_states("9010-01")
            .iter()
            .all(|s| s == "delivered"))
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut subjects: Vec<String> = sink
        .received()
        .iter()
        .map(|r| {
            r.headers()
                .lines()
                .find(|l| l.starts_with("Subject:"))
                .unwrap()
                .to_string()
        })
        .collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 20, "each message once");
    assert_eq!(sink.received().len(), 20, "no message twice");
}

on_both_backends!(
    fresh_mail_is_delivered_once_whether_handed_over_or_claimed,
    temporary_failure_is_retried_then_delivered,
    permanent_failure_marks_the_delivery_failed_without_leaking_the_address,
    killed_after_250_the_message_is_delivered_after_restart,
    killed_during_delivery_the_message_is_delivered_after_restart,
    client_leaving_mid_data_leaves_nothing_behind,
    sigterm_closes_sessions_with_421_and_exits_cleanly,
    sigterm_during_delivery_returns_it_to_the_queue,
    a_delivery_still_failing_after_give_up_after_fails,
);
