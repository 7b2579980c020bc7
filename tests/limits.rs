//! Abuse limits over a real socket: sessions per client address, commands
//! per session, total session time, messages per minute, early talkers,
//! and memory with many idle sessions. Each asserts the exact reply and
//! that the relay goes on serving afterwards.

mod common;

use std::time::Duration;

use common::{Backend, Relay, Sink, SmtpClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(backend: Backend, env: &[(&str, &str)]) -> (Sink, Relay) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    for (k, v) in env {
        relay.set_env(k, v);
    }
    relay.start().await;
    (sink, relay)
}

/// The relay still greets and takes commands.
async fn still_serving(relay: &Relay) {
    let mut c = SmtpClient::ready(relay.smtp).await;
    assert_eq!(c.cmd("NOOP").await.code, 250);
}

async fn sessions_per_address_are_capped(backend: Backend) {
    let (_sink, relay) = start(backend, &[("CT_RELAY__SMTP__MAX_SESSIONS_PER_IP", "3")]).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let (c, greeting) = SmtpClient::connect(relay.smtp).await;
        assert_eq!(greeting.code, 220);
        open.push(c);
    }
    let (mut fourth, reply) = SmtpClient::connect(relay.smtp).await;
    assert_eq!(reply.status(), "421 4.7.0", "{reply:?}");
    assert!(fourth.reply().await.is_none(), "closed after the 421");
    open.pop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    still_serving(&relay).await;
}

async fn commands_per_session_are_capped(backend: Backend) {
    let (_sink, relay) = start(backend, &[("CT_RELAY__SMTP__MAX_COMMANDS", "5")]).await;
    let mut c = SmtpClient::ready(relay.smtp).await; // EHLO is the first command
    for _ in 0..4 {
        assert_eq!(c.cmd("NOOP").await.code, 250);
    }
    assert_eq!(c.cmd("NOOP").await.status(), "421 4.7.0");
    assert!(c.reply().await.is_none(), "closed");
    still_serving(&relay).await;
}

async fn sessions_end_after_the_time_limit(backend: Backend) {
    let (_sink, relay) = start(backend, &[("CT_RELAY__SMTP__MAX_SESSION_TIME", "1s")]).await;
    let mut c = SmtpClient::ready(relay.smtp).await;
    // Busy, never idle: the total still ends it.
    let mut last = None;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let r = c.cmd("NOOP").await;
        if r.code != 250 {
            last = Some(r);
            break;
        }
    }
    assert_eq!(last.expect("closed within 3 s").status(), "421 4.4.2");
    still_serving(&relay).await;
}

async fn messages_per_minute_are_capped_per_address(backend: Backend) {
    let (_sink, relay) = start(
        backend,
        &[("CT_RELAY__SMTP__MAX_MESSAGES_PER_IP_PER_MINUTE", "2")],
    )
    .await;
    let mut c = SmtpClient::ready(relay.smtp).await;
    for _ in 0..2 {
        assert_eq!(c.cmd("MAIL FROM:<a@example.org>").await.code, 250);
        assert_eq!(c.cmd("RSET").await.code, 250);
    }
    assert_eq!(
        c.cmd("MAIL FROM:<a@example.org>").await.status(),
        "450 4.7.1"
    );
    assert_eq!(c.cmd("NOOP").await.code, 250, "the session goes on");
    // Another session from the same address is over the rate too.
    let mut other = SmtpClient::ready(relay.smtp).await;
    assert_eq!(
        other.cmd("mail from:<b@example.org>").await.status(),
        "450 4.7.1"
    );
}

async fn early_talkers_are_dropped(backend: Backend) {
    let (_sink, relay) = start(backend, &[("CT_RELAY__SMTP__GREETING_DELAY", "300ms")]).await;
    let mut s = TcpStream::connect(relay.smtp).await.unwrap();
    s.write_all(b"EHLO eager.test\r\nMAIL FROM:<x@example.org>\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("554 5.5.1 "), "{answer}");
    assert!(
        !answer.contains("220"),
        "no greeting for an early talker: {answer}"
    );
    still_serving(&relay).await;
}

/// 1000 sessions that connect, greet and then wait: the relay's resident
/// memory grows by a bounded amount per session.
async fn a_thousand_idle_sessions_use_bounded_memory(backend: Backend) {
    let env = [
        ("CT_RELAY__SMTP__MAX_SESSIONS_PER_IP", "2000"),
        ("CT_RELAY__SMTP__MAX_SESSIONS", "2000"),
    ];
    let (_sink, relay) = start(backend, &env).await;
    still_serving(&relay).await; // warm up
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = relay.rss_kib();
    let mut idle = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let (mut c, greeting) = SmtpClient::connect(relay.smtp).await;
        assert_eq!(greeting.code, 220);
        assert_eq!(c.cmd("EHLO idle.test").await.code, 250);
        idle.push(c);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = relay.rss_kib();
    let per_session = (after.saturating_sub(before)) as f64 / 1000.0;
    eprintln!("RSS {before} KiB -> {after} KiB with 1000 idle sessions: {per_session:.1} KiB each");
    assert!(per_session < 64.0, "{per_session:.1} KiB per idle session");
    still_serving(&relay).await;
    drop(idle);
}

on_both_backends!(
    sessions_per_address_are_capped,
    commands_per_session_are_capped,
    sessions_end_after_the_time_limit,
    messages_per_minute_are_capped_per_address,
    early_talkers_are_dropped,
    a_thousand_idle_sessions_use_bounded_memory,
);
