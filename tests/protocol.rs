//! SMTP framing over a real socket: pipelining, DATA edge cases, smuggling.

mod common;

use std::time::Duration;

use common::{wait_until, Backend, Relay, Sink, SmtpClient};

async fn setup(backend: Backend) -> (Sink, Relay, String) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let alias = relay.create_alias("acme", "1100-01", "customer", "buyer@example.net");
    relay.start().await;
    (sink, relay, alias)
}

async fn pipelined_commands_after_data_are_handled_exactly_once(backend: Backend) {
    let (sink, relay, alias) = setup(backend).await;
    let mut c = SmtpClient::ready(relay.smtp).await;
    c.send_raw(format!("MAIL FROM:<a@example.org>\r\nRCPT TO:<{alias}>\r\nDATA\r\n").as_bytes())
        .await;
    assert_eq!(c.reply().await.unwrap().code, 250);
    assert_eq!(c.reply().await.unwrap().code, 250);
    assert_eq!(c.reply().await.unwrap().code, 354);
    // The end of one message and the whole next transaction in one write.
    c.send_raw(
        format!("Subject: one\r\n\r\n1\r\n.\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<{alias}>\r\nDATA\r\n").as_bytes(),
    )
    .await;
    assert_eq!(c.reply().await.unwrap().status(), "250 2.0.0");
    assert_eq!(c.reply().await.unwrap().code, 250);
    assert_eq!(c.reply().await.unwrap().code, 250);
    assert_eq!(c.reply().await.unwrap().code, 354);
    c.send_raw(b"Subject: two\r\n\r\n2\r\n.\r\nQUIT\r\n").await;
    assert_eq!(c.reply().await.unwrap().status(), "250 2.0.0");
    assert_eq!(c.reply().await.unwrap().status(), "221 2.0.0");
    assert!(c.reply().await.is_none());
    assert!(wait_until(Duration::from_secs(15), || sink.received().len() == 2).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.received().len(), 2);
}

async fn first_body_line_dot_or_double_dot(backend: Backend) {
    let (sink, relay, alias) = setup(backend).await;
    let mut c = SmtpClient::ready(relay.smtp).await;
    // "..": a stuffed ".", the message's only line.
    c.cmd("MAIL FROM:<a@example.org>").await;
    c.cmd(&format!("RCPT TO:<{alias}>")).await;
    c.cmd("DATA").await;
    c.send_raw(b"..\r\n.\r\n").await;
    assert_eq!(c.reply().await.unwrap().status(), "250 2.0.0");
    // ".": the end of an empty message, not a line of it; an empty message
    // is refused.
    c.cmd("MAIL FROM:<a@example.org>").await;
    c.cmd(&format!("RCPT TO:<{alias}>")).await;
    c.cmd("DATA").await;
    c.send_raw(b".\r\n").await;
    assert_eq!(c.reply().await.unwrap().status(), "554 5.6.0");
    assert_eq!(c.cmd("NOOP").await.code, 250);

    assert!(wait_until(Duration::from_secs(15), || sink.received().len() == 1).await);
    // The line "." is no header field, so it starts the body, after the
    // empty line the relay writes to end the header it put on top.
    assert_eq!(after_received(&sink.received()[0].data), b"\r\n.\r\n");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.received().len(), 1);
}

/// The message after the Received field the relay put on top.
fn after_received(data: &[u8]) -> &[u8] {
    assert!(data.starts_with(b"Received: "));
    let mut i = 0;
    while let Some(p) = data[i..].windows(2).position(|w| w == b"\r\n") {
        let end = i + p + 2;
        if !matches!(data.get(end), Some(b'\t') | Some(b' ')) {
            return &data[end..];
        }
        i = end;
    }
    panic!("no end of Received field");
}

/// The relay's Received field names the client by its EHLO argument only
/// when that is a host name or an address literal: an address given there
/// never reaches the copy.
async fn ehlo_argument_reaches_received_only_as_a_host_name(backend: Backend) {
    let (sink, relay, alias) = setup(backend).await;
    for (ehlo, shown) in [
        ("buyer@example.com", "from [unknown] ([127.0.0.1])"),
        ("[127.0.0.1]", "from [127.0.0.1] ([127.0.0.1])"),
        (
            "mail.acme-store.com",
            "from mail.acme-store.com ([127.0.0.1])",
        ),
    ] {
        let (mut c, _) = SmtpClient::connect(relay.smtp).await;
        assert_eq!(c.cmd(&format!("EHLO {ehlo}")).await.code, 250, "{ehlo}");
        let r = c
            .send_mail("a@example.org", &[&alias], "Subject: hi\r\n\r\nhello\r\n")
            .await;
        assert_eq!(r.status(), "250 2.0.0");
        let n = sink.received().len() + 1;
        assert!(wait_until(Duration::from_secs(15), || sink.received().len() == n).await);
        let copy = sink.received()[n - 1].text();
        let received = copy.lines().next().unwrap();
        assert!(
            received.starts_with(&format!("Received: {shown}")),
            "{received}"
        );
        assert!(!copy.contains("buyer@example.com"), "{copy}");
    }
}

async fn bare_lf_cannot_smuggle_a_second_message(backend: Backend) {
    let (sink, relay, alias) = setup(backend).await;
    let mut c = SmtpClient::ready(relay.smtp).await;
    c.cmd("MAIL FROM:<a@example.org>").await;
    c.cmd(&format!("RCPT TO:<{alias}>")).await;
    assert_eq!(c.cmd("DATA").await.code, 354);
    let smuggled = format!(
        "Subject: outer\r\n\r\nhello\n.\nMAIL FROM:<evil@example.org>\nRCPT TO:<{alias}>\nDATA\nSubject: smuggled\n\nx\r\n.\r\n"
    );
    c.send_raw(smuggled.as_bytes()).await;
    let r = c.reply().await.unwrap();
    assert_eq!(r.status(), "554 5.6.0", "{r:?}");
    // Exactly one reply: the session is in a clean state.
    assert_eq!(c.cmd("NOOP").await.status(), "250 2.0.0");
    assert_eq!(c.cmd("RCPT TO:<x@ct.test>").await.status(), "503 5.5.1");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sink.received().is_empty());
}

/// One transaction to `alias` with `body` sent raw: the reply to its end.
async fn data_reply(c: &mut SmtpClient, alias: &str, body: &[u8]) -> String {
    c.cmd("MAIL FROM:<a@example.org>").await;
    c.cmd(&format!("RCPT TO:<{alias}>")).await;
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send_raw(body).await;
    c.send_raw(b".\r\n").await;
    c.reply().await.unwrap().status()
}

async fn long_lines_nul_bytes_and_big_messages_are_refused_and_the_session_goes_on(
    backend: Backend,
) {
    let (sink, relay, alias) = setup(backend).await;
    let mut c = SmtpClient::ready(relay.smtp).await;
    for (body, status) in [
        (
            format!("Subject: long\r\n\r\n{}\r\n", "x".repeat(1200)),
            "554 5.6.0",
        ),
        (
            format!("Subject: big\r\n\r\n{}", "0123456789\r\n".repeat(100_000)),
            "552 5.3.4",
        ),
    ] {
        assert_eq!(data_reply(&mut c, &alias, body.as_bytes()).await, status);
    }
    // A command line over 1000 octets.
    assert_eq!(
        c.cmd(&format!("NOOP {}", "y".repeat(2000))).await.status(),
        "500 5.5.2"
    );
    let r = c
        .send_mail("a@example.org", &[&alias], "Subject: fine\r\n\r\nok\r\n")
        .await;
    assert_eq!(r.status(), "250 2.0.0");
    // A NUL in a header field or in the body: refused, never stored.
    let mut c = SmtpClient::ready(relay.smtp).await;
    for body in [
        "Subject: a\0b\r\n\r\nhello\r\n",
        "Subject: nul\r\n\r\nhel\0lo\r\n",
    ] {
        assert_eq!(
            data_reply(&mut c, &alias, body.as_bytes()).await,
            "554 5.6.0"
        );
    }
    assert!(wait_until(Duration::from_secs(15), || sink.received().len() == 1).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.received().len(), 1);
}

async fn more_than_50_received_fields_is_a_loop(backend: Backend) {
    let (sink, relay, alias) = setup(backend).await;
    let mut c = SmtpClient::ready(relay.smtp).await;
    let hops = "Received: from a by b; Mon, 23 Nov 2026 00:00:00 +0000\r\n".repeat(51);
    let r = c
        .send_mail(
            "a@example.org",
            &[&alias],
            &format!("{hops}Subject: loop\r\n\r\nx\r\n"),
        )
        .await;
    assert_eq!(r.status(), "554 5.4.6");
    let fifty = "Received: from a by b; Mon, 23 Nov 2026 00:00:00 +0000\r\n".repeat(50);
    let r = c
        .send_mail(
            "a@example.org",
            &[&alias],
            &format!("{fifty}Subject: ok\r\n\r\nx\r\n"),
        )
        .await;
    assert_eq!(r.status(), "250 2.0.0");
    assert!(wait_until(Duration::from_secs(15), || sink.received().len() == 1).await);
    assert!(sink.received()[0].text().contains("Subject: ok"));
}

/// A header field over 32 KiB or made of encoded-word starts that do not
/// end, or a header over 256 KiB, is refused with 552 5.3.4 and nothing
/// reaches the sink; the session goes on.
async fn an_oversized_header_is_refused(backend: Backend) {
    let (sink, relay, alias) = setup(backend).await;
    let mut c = SmtpClient::ready(relay.smtp).await;
    // One To field of 34 KiB, folded at every address.
    let many = (0..1400)
        .map(|i| format!("person{i:04}@example.org"))
        .collect::<Vec<_>>()
        .join(",\r\n ");
    assert!(many.len() > 32 * 1024);
    let r = c
        .send_mail(
            "a@example.org",
            &[&alias],
            &format!("To: {many}\r\nSubject: wide\r\n\r\nx\r\n"),
        )
        .await;
    assert_eq!(r.status(), "552 5.3.4");
    // 300 fields of 912 bytes: each is fine, the header is not.
    let field = format!("X-Filler: {}\r\n", "f".repeat(900));
    let r = c
        .send_mail(
            "a@example.org",
            &[&alias],
            &format!("{}Subject: tall\r\n\r\nx\r\n", field.repeat(300)),
        )
        .await;
    assert_eq!(r.status(), "552 5.3.4");
    // 300 encoded-word starts that never end, in a folded 3 KiB Subject;
    // 300 words that end are taken.
    for (word, status) in [
        ("=?ab?q?x", "552 5.3.4"),
        ("=?utf-8?q?Jo=C3=A3o?=", "250 2.0.0"),
    ] {
        let words = vec![word; 300];
        let lines: Vec<String> = words.chunks(30).map(|c| c.join(" ")).collect();
        let subject = lines.join("\r\n ");
        let r = c
            .send_mail(
                "a@example.org",
                &[&alias],
                &format!("Subject: {subject}\r\n\r\nx\r\n"),
            )
            .await;
        assert_eq!(r.status(), status);
    }
    let r = c
        .send_mail(
            "a@example.org",
            &[&alias],
            &format!("{}Subject: ok\r\n\r\nx\r\n", field.repeat(200)),
        )
        .await;
    assert_eq!(r.status(), "250 2.0.0");
    assert!(wait_until(Duration::from_secs(15), || sink.received().len() == 2).await);
    assert!(sink
        .received()
        .iter()
        .any(|m| m.text().contains("Subject: ok")));
}

async fn idle_client_gets_421_and_is_closed(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay =
        Relay::with_smarthost(backend, sink.addr).env("CT_RELAY__SMTP__IDLE_TIMEOUT", "1s");
    relay.start().await;
    let mut c = SmtpClient::ready(relay.smtp).await;
    let r = c.reply().await.expect("421 before close");
    assert_eq!(r.status(), "421 4.4.2");
    assert!(c.reply().await.is_none());
    // The relay still serves.
    assert_eq!(
        SmtpClient::ready(relay.smtp).await.cmd("QUIT").await.code,
        221
    );
}

on_both_backends!(
    pipelined_commands_after_data_are_handled_exactly_once,
    first_body_line_dot_or_double_dot,
    bare_lf_cannot_smuggle_a_second_message,
    ehlo_argument_reaches_received_only_as_a_host_name,
    long_lines_nul_bytes_and_big_messages_are_refused_and_the_session_goes_on,
    more_than_50_received_fields_is_a_loop,
    an_oversized_header_is_refused,
    idle_client_gets_421_and_is_closed,
);
