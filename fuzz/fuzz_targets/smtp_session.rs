//! The SMTP state machine, fed as the connection feeds it: bytes go into the
//! input buffer, command lines into the session, DATA through the reader.
//!
//! Checks, besides "no panic":
//! - every reply is well formed on the wire (code 2xx-5xx, CRLF only at the
//!   end of each line): nothing a client sends can inject a reply line;
//! - a message handed out has only CRLF line endings and at least one
//!   recipient, and is never larger than the limit;
//! - memory stays bounded: the input buffer never keeps more than one line
//!   plus the last chunk;
//! - framing does not depend on how the bytes arrive: the same input in one
//!   read and in reads of the fuzzer's chosen sizes gives the same replies.

#![no_main]

use ct_relay::smtp::input::MAX_COMMAND_LINE;
use ct_relay::smtp::{
    DataReader, Event, InputBuffer, Limits, Line, Refusal, Reply, Session, Verdict,
};
use libfuzzer_sys::fuzz_target;

const MAX_SIZE: usize = 4096;

/// What one run answered, reply by reply, and the messages it accepted.
#[derive(Debug, PartialEq, Eq)]
struct Transcript {
    replies: Vec<Vec<u8>>,
    messages: Vec<(String, Vec<String>, Vec<u8>)>,
}

fn limits() -> Limits {
    Limits {
        max_message_size: MAX_SIZE,
        max_recipients: 4,
        max_errors: 5,
        max_commands: 200,
    }
}

/// A verdict that depends only on the address, so runs agree.
fn verdict(address: &str) -> Verdict<String> {
    match address.len() % 5 {
        0 => Verdict::Relaying,
        1 => Verdict::Unknown,
        2 => Verdict::TemporaryFailure,
        _ => Verdict::Accept(address.to_string()),
    }
}

fn outcome(body: &[u8]) -> Result<String, Refusal> {
    match body.len() % 7 {
        0 => Err(Refusal::StorageUnavailable),
        1 => Err(Refusal::MailLoop),
        2 => Err(Refusal::DmarcReject),
        _ => Ok("01TESTQUEUEID".to_string()),
    }
}

fn check_reply(reply: &Reply) -> Vec<u8> {
    assert!((200..600).contains(&reply.code), "code {}", reply.code);
    let wire = reply.to_wire();
    assert!(wire.ends_with(b"\r\n"));
    let lines = wire.split_inclusive(|&b| b == b'\n').count();
    assert_eq!(lines, reply.lines.len().max(1), "reply injection: {wire:?}");
    for line in wire.split_inclusive(|&b| b == b'\n') {
        assert!(line.ends_with(b"\r\n"));
        assert!(
            !line[..line.len() - 2].contains(&b'\r'),
            "bare CR: {wire:?}"
        );
    }
    wire
}

fn check_body(body: &[u8]) {
    assert!(body.len() <= MAX_SIZE);
    for (i, &b) in body.iter().enumerate() {
        match b {
            b'\n' => assert!(i > 0 && body[i - 1] == b'\r', "bare LF at {i}"),
            b'\r' => assert!(body.get(i + 1) == Some(&b'\n'), "bare CR at {i}"),
            0 => panic!("NUL at {i}"),
            _ => {}
        }
    }
}

/// Run a whole session over `input`, read in pieces of `sizes` (cycled).
/// STARTTLS ends the run (the handshake would fail here): the input after
/// it depends on reads, and dropping it is the connection's job.
fn run(input: &[u8], sizes: &[usize], tls: bool) -> Transcript {
    let mut session: Session<String> = Session::new("mx.fuzz.test", limits());
    if tls {
        session.offer_tls();
    }
    let mut t = Transcript {
        replies: vec![check_reply(&session.greeting())],
        messages: Vec::new(),
    };
    let mut buffer = InputBuffer::new();
    let mut data: Option<DataReader> = None;
    let mut pos = 0;
    let mut size = sizes.iter().copied().cycle();
    loop {
        // Handle everything complete in the buffer before reading more.
        let event = if let Some(reader) = data.as_mut() {
            let used = reader.feed(buffer.pending());
            buffer.consume(used);
            if !reader.is_done() {
                None
            } else {
                let body = data.take().expect("reading").finish();
                Some(match session.data_finished(body) {
                    Ok(envelope) => {
                        assert!(!envelope.recipients.is_empty());
                        check_body(&envelope.body);
                        let result = outcome(&envelope.body);
                        if result.is_ok() {
                            t.messages.push((
                                envelope.mail_from,
                                envelope.recipients,
                                envelope.body,
                            ));
                        }
                        session.accepted(result)
                    }
                    Err(event) => event,
                })
            }
        } else {
            match buffer.next_line() {
                Some(Line::Command(line)) => Some(session.command(line)),
                Some(Line::TooLong) => Some(session.line_too_long()),
                None => None,
            }
        };
        match event {
            Some(Event::CheckRecipient(address)) => {
                let event = session.recipient_checked(verdict(&address));
                let (Event::Reply(r) | Event::Close(r)) = &event else {
                    panic!("recipient_checked gave {event:?}");
                };
                t.replies.push(check_reply(r));
                if matches!(event, Event::Close(_)) {
                    return t;
                }
            }
            Some(Event::Reply(r)) => t.replies.push(check_reply(&r)),
            Some(Event::ReadData(r)) => {
                t.replies.push(check_reply(&r));
                data = Some(DataReader::new(session.max_message_size()));
            }
            Some(Event::Close(r) | Event::StartTls(r)) => {
                t.replies.push(check_reply(&r));
                return t;
            }
            None => {
                if pos == input.len() {
                    return t;
                }
                let n = size
                    .next()
                    .unwrap_or(input.len())
                    .clamp(1, input.len() - pos);
                buffer.extend(&input[pos..pos + n]);
                pos += n;
                assert!(
                    buffer.pending().len() <= MAX_COMMAND_LINE + n,
                    "input buffer kept {} bytes",
                    buffer.pending().len()
                );
            }
        }
    }
}

fuzz_target!(|input: &[u8]| {
    // First byte: options; next bytes up to a 0: read sizes; then the stream.
    let Some((&flags, rest)) = input.split_first() else {
        return;
    };
    let split = rest.iter().position(|&b| b == 0).unwrap_or(0).min(8);
    let sizes: Vec<usize> = rest[..split].iter().map(|&b| b as usize).collect();
    let stream = rest.get(split + 1..).unwrap_or_default();
    if stream.is_empty() {
        return;
    }
    let tls = flags & 1 == 1;
    let whole = run(stream, &[stream.len()], tls);
    let pieces = run(stream, if sizes.is_empty() { &[1] } else { &sizes }, tls);
    assert_eq!(whole, pieces, "replies depend on how the input was read");
});
