//! Micro-benchmarks of the per-message CPU work: the alias codec (make and
//! check, including RCPT to a forged alias, refused without storage), header
//! masking and the timeline summary, and the SMTP parser (commands through
//! the session, DATA through the reader), and the policy stage's rules
//! that need no I/O (claims, bulk, attachments; the store policy read and
//! the rate counts are one query each, the scanner a round trip to
//! rspamd). `cargo bench --bench hot_paths`.

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ct_relay::alias::{AliasKey, Aliaser, MaskMode, Role, TagCheck, Ttl};
use ct_relay::masking::{mask, summarize, AliasMap, Masker, Parsed};
use ct_relay::smtp::{DataReader, Event, Limits, Session, Verdict};

fn aliaser() -> Aliaser {
    let key = AliasKey::new((0u8..32).collect()).unwrap();
    Aliaser::new(key, "ct.vtex.com.br", "2months".parse::<Ttl>().unwrap())
}

fn alias_codec(c: &mut Criterion) {
    let relay = aliaser();
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap();
    let hard = relay
        .participant(
            "acme",
            "1234567890123-01",
            Role::Customer,
            "johndoe@example.com",
            MaskMode::Hard,
            now,
        )
        .unwrap()
        .alias;
    let soft = relay
        .participant(
            "acme",
            "1234567890123-01",
            Role::Customer,
            "johndoe@example.com",
            MaskMode::Soft,
            now,
        )
        .unwrap()
        .alias;
    // Same shape as a real hard alias, wrong tag: what a dictionary attack sends.
    let forged = format!("{}000000000000@ct.vtex.com.br", &hard[..20]);
    assert_eq!(relay.check_at(&forged, now), TagCheck::Invalid);
    let bounce = relay.bounce_address("01JDQ3ZK9AEXNT229PWCDW0SRT", now);

    let mut g = c.benchmark_group("alias");
    g.throughput(Throughput::Elements(1));
    g.bench_function("make_hard", |b| {
        b.iter(|| {
            relay.participant(
                black_box("acme"),
                black_box("1234567890123-01"),
                Role::Customer,
                black_box("johndoe@example.com"),
                MaskMode::Hard,
                now,
            )
        })
    });
    g.bench_function("check_hard", |b| {
        b.iter(|| relay.check_at(black_box(&hard), now))
    });
    g.bench_function("check_soft", |b| {
        b.iter(|| relay.check_at(black_box(&soft), now))
    });
    g.bench_function("check_forged_tag", |b| {
        b.iter(|| relay.check_at(black_box(&forged), now))
    });
    g.bench_function("check_bounce", |b| {
        b.iter(|| relay.check_at(black_box(&bounce), now))
    });
    g.finish();
}

/// A 10 KiB order message with the shop in From and the buyer in To and Cc.
fn message() -> Vec<u8> {
    let mut m =
        b"Received: from mx.acme-store.com by mx.example; Mon, 23 Nov 2026 10:00:00 +0000\r\n\
Message-ID: <order-1234567890123@acme-store.com>\r\n\
Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\
From: ACME Store <sac@acme-store.com>\r\n\
To: \"Doe, John\" <johndoe@example.com>\r\n\
Cc: johndoe@example.com, other@elsewhere.test\r\n\
Subject: =?UTF-8?Q?Seu_pedido_foi_enviado?=\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n"
            .to_vec();
    while m.len() < 10 * 1024 {
        m.extend_from_slice(b"Your order 1234567890123-01 has shipped and will arrive soon.\r\n");
    }
    m
}

/// The header a shop's mail picks up through an ESP and two relays, in
/// front of the same 10 KiB body: Return-Path, Received chain, verdicts,
/// an ARC set, DKIM, receipts and list fields.
fn real_world_message() -> Vec<u8> {
    let mut m = b"Return-Path: <bounces+sac=acme-store.com@esp.example>\r\n\
Received: from mx.esp.example (mx.esp.example [192.0.2.10])\r\n\tby mx.example.net with ESMTPS id 4Xa\r\n\tfor <johndoe@example.com>; Mon, 23 Nov 2026 10:00:00 +0000\r\n\
Received: from app.acme-store.com by mx.esp.example with ESMTP id 9f; Mon, 23 Nov 2026 09:59:59 +0000\r\n\
Authentication-Results: mx.example.net; spf=pass smtp.mailfrom=bounces+sac=acme-store.com@esp.example;\r\n\tdkim=pass header.i=@acme-store.com header.s=s1; dmarc=pass header.from=acme-store.com\r\n\
ARC-Seal: i=1; a=rsa-sha256; t=1795000000; cv=none; d=example.net; s=arc; b=c2lnbmF0dXJl\r\n\
ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=example.net; s=arc; h=from:to:subject; bh=aGFzaA==; b=c2ln\r\n\
ARC-Authentication-Results: i=1; mx.example.net; dkim=pass header.i=@acme-store.com\r\n\
DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=acme-store.com; i=@acme-store.com; s=s1;\r\n\th=from:to:subject:date:message-id; bh=aGFzaA==; b=c2lnbmF0dXJl\r\n\
Delivered-To: johndoe@example.com\r\n\
Message-ID: <order-1234567890123.sac@acme-store.com>\r\n\
Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\
From: ACME Store <sac@acme-store.com>\r\n\
Reply-To: ACME Atendimento <sac@acme-store.com>\r\n\
To: \"Doe, John\" <johndoe@example.com>\r\n\
Disposition-Notification-To: sac@acme-store.com\r\n\
Subject: =?UTF-8?Q?Seu_pedido_foi_enviado?=\r\n\
X-Mailer: ACME ERP 4.2\r\n\
X-SG-EID: u001.abcdefghijklmnopqrstuvwxyz0123456789\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n"
        .to_vec();
    while m.len() < 10 * 1024 {
        m.extend_from_slice(b"Your order 1234567890123-01 has shipped and will arrive soon.\r\n");
    }
    m
}

fn masked_id(id: &str) -> String {
    format!("m.{:032x}@ct.vtex.com.br", id.len())
}

fn masking(c: &mut Criterion) {
    let msg = message();
    let mut aliases = AliasMap::new();
    aliases.insert(
        "sac@acme-store.com",
        "c2db2cdaaba1ba2f6171492a5c6accf5@ct.vtex.com.br",
    );
    aliases.insert(
        "johndoe@example.com",
        "f44789d54cb7909fb48a75629fbe7cfa@ct.vtex.com.br",
    );
    let masker = Masker {
        aliases: &aliases,
        masked_id: &masked_id,
        authserv_id: "mx.ct.vtex.com.br",
        drop_arc: false,
    };
    let mut g = c.benchmark_group("masking");
    g.throughput(Throughput::Bytes(msg.len() as u64));
    g.bench_function("split_and_mask_10k", |b| {
        b.iter(|| {
            mask(
                &Parsed::new(black_box(&msg)),
                &masker,
                b"Received: by relay\r\n",
            )
        })
    });
    let real = real_world_message();
    g.bench_function("split_and_mask_10k_real_world_header", |b| {
        b.iter(|| {
            mask(
                &Parsed::new(black_box(&real)),
                &masker,
                b"Received: by relay\r\n",
            )
        })
    });
    let masked = mask(&Parsed::new(&msg), &masker, b"").content;
    g.bench_function("summarize_10k", |b| {
        b.iter(|| summarize(black_box(&masked), &aliases, "ct.vtex.com.br"))
    });
    g.finish();

    // About the worst field the relay takes (accept::MAX_HEADER_FIELD and
    // MAX_WORD_READING): 32 KiB ending in 115 encoded-word starts that never
    // end, which make mail-parser read 61 KiB, then a known address.
    let mut g = c.benchmark_group("masking");
    g.sample_size(20);
    let starts = "=?ab?q?x ".repeat(115);
    let filler = "x ".repeat((32 * 1024 - 64 - starts.len()) / 2);
    let hostile = format!("To: {filler}{starts}<johndoe@example.com>\r\n\r\nbody\r\n");
    g.throughput(Throughput::Bytes(hostile.len() as u64));
    g.bench_function("hostile_field_at_the_limits", |b| {
        b.iter(|| mask(&Parsed::new(black_box(hostile.as_bytes())), &masker, b""))
    });
    g.finish();
}

fn smtp_parser(c: &mut Criterion) {
    let limits = Limits {
        max_message_size: 10 << 20,
        max_recipients: 100,
        max_errors: 10,
        max_commands: 1000,
    };
    let commands: [&[u8]; 4] = [
        b"EHLO mx.acme-store.com\r\n",
        b"MAIL FROM:<sac@acme-store.com> SIZE=10240 BODY=8BITMIME\r\n",
        b"RCPT TO:<f44789d54cb7909fb48a75629fbe7cfa@ct.vtex.com.br>\r\n",
        b"DATA\r\n",
    ];
    let mut g = c.benchmark_group("smtp");
    g.throughput(Throughput::Elements(1));
    g.bench_function("transaction_commands", |b| {
        b.iter(|| {
            let mut s: Session<String> = Session::new("relay.test", limits.clone());
            for line in commands {
                if let Event::CheckRecipient(a) = s.command(black_box(line)) {
                    s.recipient_checked(Verdict::Accept(a));
                }
            }
            s
        })
    });
    let mut data = message();
    data.extend_from_slice(b".\r\n");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("data_reader_10k", |b| {
        b.iter(|| {
            let mut r = DataReader::new(10 << 20);
            r.feed(black_box(&data));
            r.finish()
        })
    });
    g.finish();
}

/// A shop's invoice: the 10 KiB message with a PDF and a zip of two
/// documents attached (base64), about 100 KiB.
fn message_with_attachments() -> Vec<u8> {
    use base64::Engine;
    use std::io::Write;
    let encode = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for name in ["nota-fiscal.xml", "boleto.pdf"] {
        zip.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(&vec![b'x'; 20 * 1024]).unwrap();
    }
    let zip = zip.finish().unwrap().into_inner();
    let mut m = b"From: ACME Store <sac@acme-store.com>\r\nTo: johndoe@example.com\r\n\
Subject: Invoice\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\n"
        .to_vec();
    m.extend_from_slice(&message()[400..]);
    for (name, content) in [("invoice.pdf", vec![b'%'; 60 * 1024]), ("docs.zip", zip)] {
        m.extend_from_slice(
            format!(
                "\r\n--b\r\nContent-Type: application/octet-stream\r\n\
Content-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
                encode(&content)
            )
            .as_bytes(),
        );
    }
    m.extend_from_slice(b"--b--\r\n");
    m
}

fn policy(c: &mut Criterion) {
    use ct_relay::masking::addresses;
    use ct_relay::policy::{
        judge, resolve_claims, Client, Evidence, OrderCase, Outcome, StorePolicy,
    };
    let relay = aliaser();
    let now = Utc::now();
    let make = |role, email| {
        relay
            .participant("acme", "1234567890123-01", role, email, MaskMode::Hard, now)
            .unwrap()
    };
    let participants = vec![
        make(Role::Store, "sac@acme-store.com"),
        make(Role::Customer, "johndoe@example.com"),
    ];
    let recipients = [participants[1].clone()];
    let evidence = Evidence {
        spf: (Outcome::Pass, "em.acme-store.com".into()),
        dkim: vec![(Outcome::Pass, "acme-store.com".into())],
    };
    let store = StorePolicy::default();
    // What the stage does for one order, short of storage and the scanner.
    let run = |raw: &[u8]| {
        let header = Parsed::new(raw);
        let mime = mail_parser::MessageParser::default().parse(raw);
        let mut claimed = addresses(&header.fields, &["from"]);
        claimed.push("bounces@em.acme-store.com".into());
        let client = Client {
            evidence: Some(&evidence),
            trusted: false,
            mail_from: "bounces@em.acme-store.com",
        };
        let claims = resolve_claims(
            &claimed,
            &participants,
            &client,
            &store,
            |a| {
                relay
                    .participant(
                        "acme",
                        "1234567890123-01",
                        Role::Contact,
                        a,
                        MaskMode::Hard,
                        now,
                    )
                    .ok()
                    .map(|p| p.alias)
            },
            now,
        );
        let case = OrderCase {
            policy: &store,
            recipients: &recipients,
            claims: &claims,
        };
        judge(&case, &header, mime.as_ref())
    };
    let plain = message();
    let attached = message_with_attachments();
    let mut g = c.benchmark_group("policy");
    g.throughput(Throughput::Bytes(plain.len() as u64));
    g.bench_function("judge_10k", |b| b.iter(|| run(black_box(&plain))));
    g.throughput(Throughput::Bytes(attached.len() as u64));
    g.bench_function("judge_100k_pdf_and_zip", |b| {
        b.iter(|| run(black_box(&attached)))
    });
    g.finish();
}

criterion_group!(benches, alias_codec, masking, smtp_parser, policy);
criterion_main!(benches);
