use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::*;

/// A scripted server: greets, then answers each command line with the next
/// reply whose prefix matches it (`DATA` replies are sent at the command;
/// the message is read to its dot, then `.` takes the next reply). Returns
/// every line it read.
async fn server(
    ehlo: &'static str,
    script: Vec<(&'static str, &'static str)>,
) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut r = BufReader::new(stream);
        r.get_mut().write_all(b"220 test ESMTP\r\n").await.unwrap();
        let mut lines = Vec::new();
        let mut script = script.into_iter();
        let mut in_data = false;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                return lines;
            }
            lines.push(line.clone());
            if line.starts_with("MAIL") && r.buffer().ends_with(b"DATA\r\n") {
                // RCPT and DATA came in the same read as MAIL.
                lines.push("(pipelined)".into());
            }
            if in_data {
                if line == ".\r\n" {
                    in_data = false;
                } else {
                    continue;
                }
            }
            let reply = if line.starts_with("EHLO") {
                ehlo.to_string()
            } else {
                let (expect, reply) = script.next().expect("a scripted reply");
                assert!(line.starts_with(expect), "got {line:?}, expected {expect}");
                in_data = expect == "DATA" && reply.starts_with("354");
                format!("{reply}\r\n")
            };
            r.get_mut().write_all(reply.as_bytes()).await.unwrap();
        }
    });
    (port, task)
}

async fn client(port: u16) -> Client {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    Client::start(stream, "relay.test").await.unwrap()
}

const PIPELINING: &str = "250-test\r\n250-PIPELINING\r\n250 8BITMIME\r\n";
const PLAIN: &str = "250-test\r\n250 8BITMIME\r\n";

#[tokio::test]
async fn a_pipelined_transaction_sends_its_commands_at_once_and_the_connection_is_reused() {
    let (port, server) = server(
        PIPELINING,
        vec![
            ("MAIL FROM:<a@example.com>", "250 2.1.0 ok"),
            ("RCPT TO:<b@example.net>", "250 2.1.5 ok"),
            ("DATA", "354 go"),
            (".", "250 2.0.0 Ok: queued as 1"),
            ("MAIL FROM:<>", "250 2.1.0 ok"),
            ("RCPT TO:<b@example.net>", "250 2.1.5 ok"),
            ("DATA", "354 go"),
            (".", "250 2.0.0 Ok: queued as 2"),
            ("QUIT", "221 2.0.0 bye"),
        ],
    )
    .await;
    let mut c = client(port).await;
    let reply = c
        .send(
            "a@example.com",
            "b@example.net",
            b"Subject: x\r\n\r\n.hidden\r\nend\r\n",
        )
        .await
        .unwrap();
    assert_eq!(reply.one_line(), "250 2.0.0 Ok: queued as 1");
    let reply = c
        .send(
            "",
            "b@example.net",
            b"Subject: y\r\n\r\nno final line break",
        )
        .await
        .unwrap();
    assert_eq!(reply.one_line(), "250 2.0.0 Ok: queued as 2");
    assert!(!c.is_broken());
    c.quit().await;
    let lines = server.await.unwrap();
    assert!(
        lines.contains(&"..hidden\r\n".to_string()),
        "dot-stuffed: {lines:?}"
    );
    assert!(
        lines.contains(&"no final line break\r\n".to_string()),
        "{lines:?}"
    );
}

#[tokio::test]
async fn a_refused_recipient_in_a_pipeline_is_the_answer_and_the_transaction_is_reset() {
    let (port, server) = server(
        PIPELINING,
        vec![
            ("MAIL FROM:", "250 2.1.0 ok"),
            ("RCPT TO:", "550 5.1.1 <b@example.net>: no such user"),
            ("DATA", "554 5.5.1 no valid recipients"),
            ("RSET", "250 2.0.0 ok"),
            ("MAIL FROM:", "250 2.1.0 ok"),
            ("RCPT TO:", "250 2.1.5 ok"),
            ("DATA", "354 go"),
            (".", "250 2.0.0 queued"),
        ],
    )
    .await;
    let mut c = client(port).await;
    match c.send("a@example.com", "b@example.net", b"x\r\n").await {
        Err(ClientError::Refused(r)) => {
            assert_eq!(r.code, 550);
            assert_eq!(r.one_line(), "550 5.1.1 <b@example.net>: no such user");
        }
        other => panic!("{other:?}"),
    }
    assert!(!c.is_broken(), "reset, so usable");
    assert_eq!(
        c.send("a@example.com", "c@example.net", b"x\r\n")
            .await
            .unwrap()
            .code,
        250
    );
    drop(c);
    server.await.unwrap();
}

#[tokio::test]
async fn without_pipelining_each_command_waits_and_a_refusal_stops_the_rest() {
    let (port, server) = server(
        PLAIN,
        vec![
            ("MAIL FROM:", "451 4.3.0 try later"),
            ("RSET", "250 2.0.0 ok"),
        ],
    )
    .await;
    let mut c = client(port).await;
    match c.send("a@example.com", "b@example.net", b"x\r\n").await {
        Err(ClientError::Refused(r)) => assert_eq!(r.one_line(), "451 4.3.0 try later"),
        other => panic!("{other:?}"),
    }
    drop(c);
    let lines = server.await.unwrap();
    assert!(!lines.iter().any(|l| l.starts_with("RCPT")), "{lines:?}");
    assert!(!lines.contains(&"(pipelined)".to_string()), "{lines:?}");
}

#[tokio::test]
async fn eight_bit_content_needs_8bitmime_and_multiline_replies_are_one_line() {
    let (port, server) = server(
        "250-test\r\n250 PIPELINING\r\n",
        vec![
            ("MAIL FROM:", "250 ok"),
            ("RCPT TO:", "250 ok"),
            ("DATA", "354 go"),
            (".", "250-2.0.0 first\r\n250 2.0.0 second"),
        ],
    )
    .await;
    let mut c = client(port).await;
    assert!(matches!(
        c.send("a@example.com", "b@example.net", "Olá\r\n".as_bytes()).await,
        Err(ClientError::Unsupported(r)) if r.starts_with("554 5.6.0")
    ));
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        c.send("a@example.com", "b@example.net", b"ascii\r\n"),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(reply.one_line(), "250 2.0.0 first second");
    drop(c);
    server.await.unwrap();
}

#[test]
fn dot_stuffing_doubles_leading_dots_and_ends_with_the_dot_line() {
    assert_eq!(dot_stuffed(b".a\r\nb\r\n.\r\n"), b"..a\r\nb\r\n..\r\n.\r\n");
    assert_eq!(dot_stuffed(b"a.\r\n.b"), b"a.\r\n..b\r\n.\r\n");
    assert_eq!(dot_stuffed(b""), b".\r\n");
}
