use super::*;

const SAC: &str = "c2db2cdaaba1ba2f6171492a5c6accf5@ct.test";
const JOHN: &str = "f44789d54cb7909fb48a75629fbe7cfa@ct.test";

fn map() -> AliasMap {
    let mut m = AliasMap::new();
    m.insert("sac@acme-store.com", SAC);
    m.insert("johndoe@example.com", JOHN);
    m
}

fn masked_id(id: &str) -> String {
    format!("m.{}@ct.test", id.len())
}

fn run(message: &[u8], prepend: &[u8]) -> (String, Report) {
    let aliases = map();
    let masker = Masker {
        aliases: &aliases,
        masked_id: &masked_id,
        authserv_id: "mx.ct.test",
        drop_arc: false,
    };
    let m = mask(&Parsed::new(message), &masker, prepend);
    (String::from_utf8_lossy(&m.content).into_owned(), m.report)
}

const MSG: &[u8] = b"Return-Path: <bounce@acme-store.com>\r\n\
From: ACME Store <SAC@acme-store.com>\r\n\
To: f44789d54cb7909fb48a75629fbe7cfa@ct.test\r\n\
Cc: \"Doe, John\" <johndoe@example.com>,\r\n\tother@elsewhere.test\r\n\
Subject: =?UTF-8?Q?Pedido_enviado?=\r\n\
X-Mailer: test\r\n\
\r\n\
Body mentions sac@acme-store.com and stays as is.\r\n";

#[test]
fn masks_address_fields_and_leaves_the_rest_and_the_body() {
    let (out, report) = run(MSG, b"Received: by test\r\n");
    assert!(out.starts_with("Received: by test\r\nFrom: "), "{out}");
    assert!(
        out.contains(&format!("From: ACME Store <{SAC}>\r\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Cc: \"Doe, John\" <{JOHN}>,\r\n\tother@elsewhere.test\r\n"
        )),
        "{out}"
    );
    // Untouched fields keep their exact bytes.
    assert!(out.contains("To: f44789d54cb7909fb48a75629fbe7cfa@ct.test\r\n"));
    assert!(out.contains("Subject: =?UTF-8?Q?Pedido_enviado?=\r\nX-Mailer: test\r\n\r\n"));
    // The body is never rewritten.
    assert!(out.ends_with("\r\n\r\nBody mentions sac@acme-store.com and stays as is.\r\n"));
    // Return-Path is the final delivery's to add.
    assert!(!out.contains("Return-Path"), "{out}");
    assert_eq!(report.removed, ["envelope"]);
    assert!(report.leaks_fixed.is_empty());
}

#[test]
fn every_field_real_mail_picks_up_on_its_way_is_masked_or_removed() {
    let msg = b"Received: from mail.acme-store.com by mx.example.net\r\n\tfor <johndoe@example.com>; Mon, 23 Nov 2026 10:00:00 +0000\r\n\
Authentication-Results: mx.example.net; spf=pass smtp.mailfrom=sac@acme-store.com\r\n\
Authentication-Results: mx.example.net; spf=pass smtp.mailfrom=acme-store.com\r\n\
ARC-Seal: i=1; a=rsa-sha256; cv=none; d=example.net; s=arc; b=abc\r\n\
ARC-Authentication-Results: i=1; mx.example.net; dkim=pass header.i=sac@acme-store.com\r\n\
DKIM-Signature: v=1; a=rsa-sha256; d=acme-store.com; i=sac@acme-store.com; s=s1; b=xyz\r\n\
DKIM-Signature: v=1; a=rsa-sha256; d=acme-store.com; s=s2; b=xyz\r\n\
Delivered-To: johndoe@example.com\r\n\
X-Original-To: johndoe@example.com\r\n\
Resent-From: sac@acme-store.com\r\n\
Resent-To: johndoe@example.com\r\n\
Disposition-Notification-To: sac@acme-store.com\r\n\
Return-Receipt-To: sac@acme-store.com\r\n\
Errors-To: sac@acme-store.com\r\n\
X-Sender: sac@acme-store.com\r\n\
Mail-Followup-To: sac@acme-store.com, johndoe@example.com\r\n\
List-Post: <mailto:sac@acme-store.com>\r\n\
Message-ID: <abc.sac@acme-store.com>\r\n\
References: <x@y.test> <abc.sac@acme-store.com>\r\n\
X-Custom: call sac @ acme-store.com\r\n\
\r\nbody\r\n";
    let (out, report) = run(msg, b"");
    let lower = out.to_lowercase();
    assert!(
        !lower.contains("sac@acme-store.com") && !lower.contains("johndoe@example.com"),
        "{out}"
    );
    assert!(!lower.contains("sac @ acme-store.com"), "{out}");
    for gone in ["Delivered-To", "X-Original-To", "ARC-", "i=sac"] {
        assert!(!out.contains(gone), "{gone} in {out}");
    }
    // The verdict naming only the domain stays, as does the signature without i=.
    assert!(out.contains("smtp.mailfrom=acme-store.com"), "{out}");
    assert!(out.contains("s=s2"), "{out}");
    assert!(out.contains(&format!("for <{JOHN}>;")), "{out}");
    assert!(out.contains(&format!("List-Post: <mailto:{SAC}>")), "{out}");
    assert!(out.contains("Message-ID: <m.22@ct.test>\r\n"), "{out}");
    assert!(
        out.contains("References: <x@y.test> <m.22@ct.test>\r\n"),
        "{out}"
    );
    let mut removed = report.removed.clone();
    removed.sort();
    assert_eq!(
        removed,
        ["arc", "arc", "envelope", "envelope", "signature", "verdict"]
    );
    // Only X-Custom had no rule of its own.
    assert_eq!(report.leaks_fixed, ["other"]);
    assert!(out.ends_with("\r\n\r\nbody\r\n"));
}

#[test]
fn an_arc_set_without_a_participant_is_kept_whole() {
    let msg = b"ARC-Seal: i=1; cv=none; d=example.net; b=abc\r\n\
ARC-Authentication-Results: i=1; mx.example.net; spf=pass smtp.mailfrom=example.net\r\n\r\n";
    let (out, report) = run(msg, b"");
    assert_eq!(out.as_bytes(), msg);
    assert!(report.removed.is_empty());
}

#[test]
fn a_verdict_claiming_the_relays_own_name_is_forged_and_goes() {
    let msg = b"Authentication-Results: MX.ct.test; dkim=pass header.d=bank.example\r\n\
Authentication-Results: (c) mx.ct.test; spf=pass\r\n\
Authentication-Results: mx.other.example; spf=pass\r\n\r\n";
    let (out, report) = run(msg, b"");
    assert_eq!(
        out,
        "Authentication-Results: mx.other.example; spf=pass\r\n\r\n"
    );
    assert_eq!(report.removed, ["verdict", "verdict"]);
}

#[test]
fn a_line_that_is_no_field_switches_nothing_off() {
    for junk in ["not a header", "Fr om: x", "X\u{e9}: 8-bit", ": no name"] {
        let msg = format!("Subject: hi\r\n{junk}\r\nFrom : sac@acme-store.com\r\nCc: johndoe@example.com\r\n\r\nbody\r\n");
        let (out, report) = run(msg.as_bytes(), b"");
        assert_eq!(
            out,
            format!("Subject: hi\r\nFrom: {SAC}\r\nCc: {JOHN}\r\n\r\nbody\r\n"),
            "{junk:?}"
        );
        assert_eq!(report.removed, ["unparsable"]);
    }
}

#[test]
fn lines_that_are_no_field_at_the_end_start_the_body_after_an_empty_line() {
    let (out, report) = run(
        b"From: sac@acme-store.com\r\nnot a header\r\nsac@acme-store.com\r\n",
        b"",
    );
    assert_eq!(
        out,
        format!("From: {SAC}\r\n\r\nnot a header\r\nsac@acme-store.com\r\n")
    );
    assert!(report.removed.is_empty());
    let (out, _) = run(b"", b"R: x\r\n");
    assert_eq!(out, "R: x\r\n");
}

#[test]
fn attachment_names_in_the_messages_own_header_are_masked() {
    let msg = b"Content-Type: application/pdf; name=\"sac@acme-store.com.pdf\"\r\n\
Content-Disposition: attachment;\r\n filename*0*=utf-8''sac%40acme; filename*1*=-store.com.pdf\r\n\r\nJVBERi0=\r\n";
    let (out, report) = run(msg, b"");
    assert!(
        !out.contains("sac@acme-store.com") && !out.contains("sac%40acme"),
        "{out}"
    );
    assert!(out.contains(&format!("name=\"{SAC}.pdf\"")), "{out}");
    assert_eq!(report.leaks_fixed, ["content-type", "content-disposition"]);
    assert!(out.ends_with("\r\n\r\nJVBERi0=\r\n"));
}

#[test]
fn a_thousand_fields_and_a_hundred_kilobyte_field_cost_little() {
    let mut msg = Vec::new();
    for i in 0..1000 {
        msg.extend_from_slice(format!("X-F{i}: value {i} sac@acme-store.com\r\n").as_bytes());
    }
    msg.extend_from_slice(
        format!("To: {}sac@acme-store.com\r\n", "x@y.test, ".repeat(10_000)).as_bytes(),
    );
    msg.extend_from_slice(b"\r\nbody\r\n");
    let (out, report) = run(&msg, b"");
    assert!(!out.contains("sac@acme-store.com"));
    assert_eq!(report.leaks_fixed.len(), 1000);
    assert!(out.ends_with("\r\n\r\nbody\r\n"));
}
