use super::*;
use crate::smtp::DataReader;

fn session() -> Session<String> {
    Session::new(
        "mx.test",
        Limits {
            max_message_size: 1000,
            max_recipients: 2,
            max_errors: 5,
            max_commands: 20,
        },
    )
}

/// Feed a line and resolve recipient checks the way the relay would.
fn send(s: &mut Session<String>, line: &str) -> Event {
    match s.command(format!("{line}\r\n").as_bytes()) {
        Event::CheckRecipient(addr) => {
            let verdict = match addr.as_str() {
                a if !a.ends_with("@ct.test") => Verdict::Relaying,
                "down@ct.test" => Verdict::TemporaryFailure,
                a if a.starts_with("ok") => Verdict::Accept(a.to_string()),
                _ => Verdict::Unknown,
            };
            s.recipient_checked(verdict)
        }
        other => other,
    }
}

fn code(e: &Event) -> String {
    match e {
        Event::Reply(r) | Event::Close(r) | Event::ReadData(r) | Event::StartTls(r) => {
            format!("{} {}", r.code, r.status.as_deref().unwrap_or("-"))
        }
        Event::CheckRecipient(a) => format!("check {a}"),
    }
}

fn ready() -> Session<String> {
    let mut s = session();
    assert_eq!(code(&send(&mut s, "EHLO client.test")), "250 -");
    s
}

#[test]
fn greeting_and_ehlo_keywords() {
    let mut s = session();
    assert_eq!(s.greeting().to_string(), "220 mx.test ESMTP\r\n");
    let Event::Reply(r) = send(&mut s, "EHLO client.test") else {
        panic!()
    };
    for kw in [
        "PIPELINING",
        "SIZE 1000",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
    ] {
        assert!(r.lines.iter().any(|l| l == kw), "{kw} missing");
    }
}

#[test]
fn commands_out_of_order_get_503() {
    let mut s = session();
    assert_eq!(code(&send(&mut s, "MAIL FROM:<a@b.test>")), "503 5.5.1");
    let mut s = ready();
    assert_eq!(code(&send(&mut s, "RCPT TO:<ok@ct.test>")), "503 5.5.1");
    assert_eq!(code(&send(&mut s, "DATA")), "503 5.5.1");
    assert_eq!(code(&send(&mut s, "MAIL FROM:<a@b.test>")), "250 2.1.0");
    assert_eq!(code(&send(&mut s, "MAIL FROM:<a@b.test>")), "503 5.5.1");
    assert_eq!(code(&send(&mut s, "DATA")), "503 5.5.1");
}

#[test]
fn unknown_and_malformed_commands() {
    let mut s = ready();
    assert_eq!(code(&send(&mut s, "FOO bar")), "500 5.5.2");
    assert_eq!(code(&send(&mut s, "MAIL FROM:a@b.test")), "501 5.5.4");
    assert_eq!(
        code(&send(&mut s, "MAIL FROM:<a@b.test> SIZE=abc")),
        "501 5.5.4"
    );
    assert_eq!(code(&s.line_too_long()), "500 5.5.2");
    assert_eq!(code(&send(&mut s, "NOOP")), "250 2.0.0");
}

#[test]
fn recipient_verdicts_map_to_design_replies() {
    let mut s = ready();
    send(&mut s, "MAIL FROM:<>");
    assert_eq!(code(&send(&mut s, "RCPT TO:<x@example.com>")), "550 5.7.1");
    assert_eq!(code(&send(&mut s, "RCPT TO:<bad@ct.test>")), "550 5.1.1");
    assert_eq!(code(&send(&mut s, "RCPT TO:<down@ct.test>")), "451 4.3.0");
    assert_eq!(code(&send(&mut s, "RCPT TO:<ok1@ct.test>")), "250 2.1.5");
    assert_eq!(code(&send(&mut s, "RCPT TO:<ok2@ct.test>")), "250 2.1.5");
    assert_eq!(code(&send(&mut s, "RCPT TO:<ok3@ct.test>")), "452 4.5.3");
}

#[test]
fn declared_size_over_the_limit() {
    let mut s = ready();
    assert_eq!(
        code(&send(&mut s, "MAIL FROM:<a@b.test> SIZE=1001")),
        "552 5.3.4"
    );
    assert_eq!(
        code(&send(&mut s, "MAIL FROM:<a@b.test> SIZE=1000")),
        "250 2.1.0"
    );
}

#[test]
fn too_many_errors_close_with_421() {
    let mut s = ready();
    for _ in 0..4 {
        assert!(matches!(send(&mut s, "BOGUS"), Event::Reply(_)));
    }
    let last = send(&mut s, "BOGUS");
    assert!(matches!(last, Event::Close(_)));
    assert_eq!(code(&last), "421 4.7.0");
}

#[test]
fn quit_closes() {
    let mut s = ready();
    let e = send(&mut s, "QUIT");
    assert!(matches!(e, Event::Close(_)));
    assert_eq!(code(&e), "221 2.0.0");
}

fn through_data(s: &mut Session<String>, body: &[u8]) -> Result<Envelope<String>, Event> {
    send(s, "MAIL FROM:<shop@example.com>");
    send(s, "RCPT TO:<ok1@ct.test>");
    assert_eq!(code(&send(s, "DATA")), "354 -");
    let mut reader = DataReader::new(s.max_message_size());
    reader.feed(body);
    assert!(reader.is_done());
    s.data_finished(reader.finish())
}

#[test]
fn full_transaction_then_queued_reply() {
    let mut s = ready();
    let env = through_data(&mut s, b"Subject: hi\r\n\r\nbody\r\n.\r\n").unwrap();
    assert_eq!(env.mail_from, "shop@example.com");
    assert_eq!(env.recipients, vec!["ok1@ct.test".to_string()]);
    assert_eq!(env.helo, "client.test");
    assert_eq!(env.body, b"Subject: hi\r\n\r\nbody\r\n");
    let Event::Reply(r) = s.accepted(Ok("01ABC".into())) else {
        panic!()
    };
    assert_eq!(r.to_string(), "250 2.0.0 Ok: queued as 01ABC\r\n");
    // The session is ready for the next transaction.
    assert_eq!(code(&send(&mut s, "MAIL FROM:<a@b.test>")), "250 2.1.0");
}

#[test]
fn storage_failure_is_451_and_loop_is_554() {
    let mut s = ready();
    through_data(&mut s, b"x\r\n.\r\n").unwrap();
    assert_eq!(
        code(&s.accepted(Err(Refusal::StorageUnavailable))),
        "451 4.3.0"
    );
    through_data(&mut s, b"x\r\n.\r\n").unwrap();
    assert_eq!(code(&s.accepted(Err(Refusal::MailLoop))), "554 5.4.6");
    through_data(&mut s, b"x\r\n.\r\n").unwrap();
    assert_eq!(code(&s.accepted(Err(Refusal::HeaderTooBig))), "552 5.3.4");
}

#[test]
fn data_errors_are_refused_and_reset_the_transaction() {
    let mut s = ready();
    let big = [
        b"x".repeat(990),
        b"\r\n".to_vec(),
        b"y".repeat(20),
        b"\r\n.\r\n".to_vec(),
    ]
    .concat();
    assert_eq!(code(&through_data(&mut s, &big).unwrap_err()), "552 5.3.4");
    assert_eq!(
        code(&through_data(&mut s, b"a\nb\r\n.\r\n").unwrap_err()),
        "554 5.6.0"
    );
    assert_eq!(code(&send(&mut s, "RCPT TO:<ok1@ct.test>")), "503 5.5.1");
}

#[test]
fn too_many_commands_close_the_session() {
    let mut s = session();
    for _ in 0..20 {
        assert_eq!(code(&send(&mut s, "NOOP")), "250 2.0.0");
    }
    let e = send(&mut s, "NOOP");
    assert!(matches!(e, Event::Close(_)), "{e:?}");
    assert_eq!(code(&e), "421 4.7.0");
}

#[test]
fn each_accepted_message_counts_commands_afresh() {
    // 3 commands a message, 20 allowed: many messages over one connection.
    let mut s = ready();
    for _ in 0..30 {
        through_data(&mut s, b"x\r\n.\r\n").unwrap();
        assert_eq!(code(&s.accepted(Ok("01ABC".into()))), "250 2.0.0");
    }
    // Refused messages do not reset it.
    for _ in 0..6 {
        through_data(&mut s, b"x\r\n.\r\n").unwrap();
        s.accepted(Err(Refusal::StorageUnavailable));
    }
    for _ in 0..2 {
        assert_eq!(code(&send(&mut s, "NOOP")), "250 2.0.0");
    }
    let e = send(&mut s, "NOOP");
    assert!(matches!(e, Event::Close(_)), "{e:?}");
}

#[test]
fn starttls_is_offered_once_and_restarts_the_session() {
    let mut s = session();
    assert!(!format!("{:?}", send(&mut s, "EHLO c.test")).contains("STARTTLS"));
    assert_eq!(code(&send(&mut s, "STARTTLS")), "502 5.5.1");

    let mut s = session();
    s.offer_tls();
    assert!(format!("{:?}", send(&mut s, "EHLO c.test")).contains("STARTTLS"));
    assert_eq!(
        code(&send(&mut s, "MAIL FROM:<a@example.org>")),
        "250 2.1.0"
    );
    assert_eq!(
        code(&send(&mut s, "STARTTLS")),
        "503 5.5.1",
        "not inside a transaction"
    );
    assert_eq!(code(&send(&mut s, "RSET")), "250 2.0.0");
    let e = send(&mut s, "STARTTLS");
    assert!(matches!(e, Event::StartTls(_)), "{e:?}");
    s.tls_started();
    assert_eq!(
        code(&send(&mut s, "MAIL FROM:<a@example.org>")),
        "503 5.5.1",
        "greet again first"
    );
    assert!(!format!("{:?}", send(&mut s, "EHLO c.test")).contains("STARTTLS"));
    assert_eq!(code(&send(&mut s, "STARTTLS")), "503 5.5.1");
}

/// Parameters of extensions EHLO does not offer get 555 5.5.4; the offered
/// ones (SIZE, BODY=8BITMIME, SMTPUTF8) are taken.
#[test]
fn unadvertised_parameters_get_555() {
    let mut s = ready();
    for line in [
        "MAIL FROM:<a@b.test> RET=HDRS",
        "MAIL FROM:<a@b.test> ENVID=abc",
        "MAIL FROM:<a@b.test> BODY=BINARYMIME",
        "MAIL FROM:<a@b.test> AUTH=<>",
        "MAIL FROM:<a@b.test> REQUIRETLS",
        "MAIL FROM:<a@b.test> MT-PRIORITY=3",
    ] {
        assert_eq!(code(&send(&mut s, line)), "555 5.5.4", "{line}");
        s = ready();
    }
    assert_eq!(
        code(&send(
            &mut s,
            "MAIL FROM:<a@b.test> SIZE=100 BODY=8BITMIME SMTPUTF8"
        )),
        "250 2.1.0"
    );
    for line in [
        "RCPT TO:<ok1@ct.test> NOTIFY=FAILURE",
        "RCPT TO:<ok1@ct.test> ORCPT=rfc822;a@b.test",
        "RCPT TO:<ok1@ct.test> RRVS=2027-01-01T00:00:00Z",
    ] {
        assert_eq!(code(&send(&mut s, line)), "555 5.5.4", "{line}");
    }
    assert_eq!(code(&send(&mut s, "RCPT TO:<ok1@ct.test>")), "250 2.1.5");
}

/// DATA with nothing in it, or only empty lines, is no message.
#[test]
fn an_empty_message_is_refused() {
    for body in [&b".\r\n"[..], b"\r\n.\r\n", b"\r\n\r\n.\r\n"] {
        let mut s = ready();
        let refused = through_data(&mut s, body).unwrap_err();
        assert_eq!(code(&refused), "554 5.6.0", "{body:?}");
        // The transaction is over; the session goes on.
        assert_eq!(code(&send(&mut s, "MAIL FROM:<a@b.test>")), "250 2.1.0");
    }
    let mut s = ready();
    assert!(through_data(&mut s, b"Subject: only a header\r\n.\r\n").is_ok());
}

#[test]
fn a_throttled_recipient_is_told_to_come_back() {
    let mut s = ready();
    send(&mut s, "MAIL FROM:<a@b.test>");
    assert_eq!(code(&s.recipient_checked(Verdict::Throttled)), "450 4.7.1");
    // Not an error that counts toward closing the session.
    assert_eq!(code(&send(&mut s, "NOOP")), "250 2.0.0");
}
