//! MIME fidelity: real-world-shaped messages (tests/corpus: multipart,
//! binary attachments, a non-UTF-8 8bit body, encoded-word headers, S/MIME,
//! 998-octet lines, folded fields) go through the relay. Each delivered body
//! is byte-identical to the original; of the header fields only From,
//! Sender, Reply-To, To, Cc and the message ids naming a participant may
//! differ (plus the Received field added on top, and an incoming
//! Return-Path removed), and the address fields keep their display names
//! and hide every sender's address. tests/headers.rs covers the fields
//! real mail picks up on its way.

mod common;

use std::time::Duration;

use common::{wait_until, Backend, Relay, Sink, SmtpClient};
use mail_parser::{Address, MessageParser};

const NAMED: [&str; 7] = [
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "message-id",
    "references",
];

/// Header fields (with their folding) and the body.
fn split(message: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header section")
        + 2;
    let (head, body) = (&message[..end], &message[end + 2..]);
    let mut fields: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    for (i, w) in head.windows(2).enumerate() {
        let next = head.get(i + 2);
        if w == b"\r\n" && !matches!(next, Some(b' ') | Some(b'\t')) {
            fields.push(&head[start..i + 2]);
            start = i + 2;
        }
    }
    (fields, body)
}

fn name(field: &[u8]) -> String {
    let colon = field.iter().position(|&b| b == b':').unwrap();
    String::from_utf8_lossy(&field[..colon]).to_ascii_lowercase()
}

fn dot_stuffed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Display names of an address field, decoded.
fn names(address: Option<&Address>) -> Vec<Option<String>> {
    address.map_or_else(Vec::new, |a| {
        a.iter().map(|x| x.name().map(str::to_string)).collect()
    })
}

fn emails(address: Option<&Address>) -> Vec<String> {
    address.map_or_else(Vec::new, |a| {
        a.iter()
            .filter_map(|x| x.address().map(str::to_ascii_lowercase))
            .collect()
    })
}

async fn corpus_passes_unchanged_but_for_the_named_fields(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let alias = relay.create_alias("acme", "6001-01", "customer", "buyer@example.com");
    relay.create_alias("acme", "6001-01", "store", "sac@acme-store.com");
    relay.start().await;

    let mut files: Vec<_> = std::fs::read_dir("tests/corpus")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5);
    for (i, path) in files.iter().enumerate() {
        let file = path.display().to_string();
        let raw = std::fs::read(path).unwrap();
        let original = String::from_utf8_lossy(&raw)
            .contains("CUSTOMER-ALIAS")
            .then(|| {
                let at = raw
                    .windows(14)
                    .position(|w| w == b"CUSTOMER-ALIAS")
                    .unwrap();
                [&raw[..at], alias.as_bytes(), &raw[at + 14..]].concat()
            });
        let original = original.unwrap_or(raw);

        let mut c = SmtpClient::ready(relay.smtp).await;
        assert_eq!(c.cmd("MAIL FROM:<sac@acme-store.com>").await.code, 250);
        assert_eq!(c.cmd(&format!("RCPT TO:<{alias}>")).await.code, 250);
        assert_eq!(c.cmd("DATA").await.code, 354);
        c.send_raw(&dot_stuffed(&original)).await;
        let reply = c.reply().await.unwrap();
        assert_eq!(reply.code, 250, "{file}: {reply:?}");
        assert!(
            wait_until(Duration::from_secs(10), || sink.received().len() == i + 1).await,
            "{file}"
        );
        let delivered = sink.received()[i].data.clone();

        let (mut sent_fields, sent_body) = split(&original);
        sent_fields.retain(|f| name(f) != "return-path");
        let (got_fields, got_body) = split(&delivered);
        assert!(got_body == sent_body, "{file}: the body changed");
        assert!(got_fields[0].starts_with(b"Received: from "), "{file}");
        assert_eq!(
            got_fields.len() - 1,
            sent_fields.len(),
            "{file}: fields added or lost"
        );
        for (sent, got) in sent_fields.iter().zip(&got_fields[1..]) {
            assert_eq!(name(sent), name(got), "{file}: field order");
            if !NAMED.contains(&name(sent).as_str()) {
                assert!(sent == got, "{file}: {} changed", name(sent));
            }
        }

        let sent = MessageParser::default().parse(&original).unwrap();
        let got = MessageParser::default().parse(&delivered).unwrap();
        assert_eq!(
            names(got.from()),
            names(sent.from()),
            "{file}: From display name"
        );
        assert_eq!(
            names(got.to()),
            names(sent.to()),
            "{file}: To display names"
        );
        assert_eq!(
            names(got.reply_to()),
            names(sent.reply_to()),
            "{file}: Reply-To display names"
        );
        assert_eq!(
            names(got.cc()),
            names(sent.cc()),
            "{file}: Cc display names"
        );
        assert_eq!(got.subject(), sent.subject(), "{file}: Subject");
        // Whoever wrote the message is hidden behind an alias.
        let senders: Vec<String> = [sent.from(), sent.sender(), sent.reply_to()]
            .into_iter()
            .flat_map(emails)
            .collect();
        let masked: Vec<String> = [got.from(), got.sender(), got.reply_to(), got.to(), got.cc()]
            .into_iter()
            .flat_map(emails)
            .collect();
        for s in &senders {
            assert!(!masked.contains(s), "{file}: {s} not masked");
        }
        assert!(
            emails(got.from()).iter().all(|a| a.ends_with("@ct.test")),
            "{file}"
        );
    }
}

on_both_backends!(corpus_passes_unchanged_but_for_the_named_fields);
