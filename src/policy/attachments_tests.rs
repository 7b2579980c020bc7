use std::io::Write;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use mail_parser::MessageParser;

use super::*;

fn policy() -> AttachmentPolicy {
    AttachmentPolicy::default()
}

/// A multipart/mixed message with a text body and `parts`, each given as
/// (extra part header lines, content).
fn message(parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut m = b"From: a@b.test\r\nSubject: order\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nYour order.\r\n"
        .to_vec();
    for (headers, content) in parts {
        m.extend_from_slice(b"--b1\r\n");
        m.extend_from_slice(headers.as_bytes());
        m.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n\r\n");
        m.extend_from_slice(STANDARD.encode(content).as_bytes());
        m.extend_from_slice(b"\r\n");
    }
    m.extend_from_slice(b"--b1--\r\n");
    m
}

fn named(name: &str) -> String {
    format!("Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n")
}

fn problem(raw: &[u8]) -> Option<AttachmentProblem> {
    let parsed = MessageParser::default().parse(raw).unwrap();
    check(&parsed, &policy())
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, content) in entries {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(content).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn refused_name(p: Option<AttachmentProblem>) -> String {
    match p {
        Some(AttachmentProblem::Refused { name, .. }) => name,
        other => panic!("{other:?}"),
    }
}

#[test]
fn order_documents_pass() {
    let pdf = b"%PDF-1.4 invoice".as_slice();
    let raw = message(&[
        (&named("nota-fiscal.pdf"), pdf),
        (&named("foto.JPG"), b"\xff\xd8\xff\xe0"),
        (
            &named("planilha.xlsx"),
            &zip_of(&[("xl/workbook.xml", b"<x/>")]),
        ),
    ]);
    assert_eq!(problem(&raw), None);
}

#[test]
fn names_are_judged_by_their_last_extension_whatever_the_spelling() {
    for name in [
        "invoice.pdf.exe",
        "INVOICE.EXE",
        "setup.exe. . ",
        "run.js",
        "macro.docm",
    ] {
        let raw = message(&[(&named(name), b"data")]);
        assert_eq!(
            refused_name(problem(&raw)).trim_end(),
            name.trim_end(),
            "{name}"
        );
    }
    // RFC 2231 and encoded-word names are decoded first.
    let rfc2231 = "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=utf-8''boleto%2Epdf%2Escr\r\n";
    assert_eq!(
        refused_name(problem(&message(&[(rfc2231, b"x")]))),
        "boleto.pdf.scr"
    );
    let word = "Content-Type: application/octet-stream; name=\"=?utf-8?q?nota=2Ebat?=\"\r\n";
    assert_eq!(refused_name(problem(&message(&[(word, b"x")]))), "nota.bat");
}

#[test]
fn declared_and_sniffed_types_count_as_much_as_the_name() {
    let declared = "Content-Type: application/x-msdownload; name=\"invoice.pdf\"\r\n";
    assert_eq!(
        refused_name(problem(&message(&[(declared, b"x")]))),
        "invoice.pdf"
    );
    let program = message(&[(&named("invoice.pdf"), b"MZ\x90\x00\x03 rest of a PE file")]);
    assert_eq!(refused_name(problem(&program)), "invoice.pdf");
    // Unnamed: the reply can only name the kind.
    let unnamed = message(&[("Content-Type: application/java-archive\r\n", b"x")]);
    match problem(&unnamed) {
        Some(AttachmentProblem::Refused { name, kind }) => {
            assert_eq!(
                (name.as_str(), kind.as_str()),
                ("", "application/java-archive")
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn archives_are_read_without_extracting_and_nested_ones_within_a_budget() {
    let inside = zip_of(&[("docs/readme.txt", b"hi"), ("docs/boleto.pdf.exe", b"MZ")]);
    let raw = message(&[(&named("pedido.zip"), &inside)]);
    match problem(&raw) {
        Some(AttachmentProblem::Refused { name, kind }) => {
            assert_eq!(name, "pedido.zip");
            assert_eq!(kind, "exe in docs/boleto.pdf.exe");
        }
        other => panic!("{other:?}"),
    }
    let nested = zip_of(&[("inner.zip", &zip_of(&[("x.vbs", b"x")]))]);
    assert!(problem(&message(&[(&named("outer.zip"), &nested)])).is_some());
    let macro_doc = zip_of(&[
        ("word/document.xml", b"<w/>"),
        ("word/vbaProject.bin", b"x"),
    ]);
    assert!(problem(&message(&[(&named("contrato.docx"), &macro_doc)])).is_some());
    let jar = zip_of(&[("META-INF/MANIFEST.MF", b"Main-Class: X")]);
    assert!(problem(&message(&[(&named("tool.zip"), &jar)])).is_some());
    // Corrupt: cannot be checked.
    let corrupt = b"PK\x03\x04 not really a zip".as_slice();
    assert_eq!(
        problem(&message(&[(&named("pedido.zip"), corrupt)])),
        Some(AttachmentProblem::Unreadable {
            name: "pedido.zip".into()
        })
    );
}

#[test]
fn a_zip_bomb_costs_its_directory_only() {
    // A million zeros compress to about a kilobyte; the directory says so
    // and nothing is decompressed.
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for i in 0..50 {
        w.start_file(format!("zeros{i}.bin"), options).unwrap();
        w.write_all(&vec![0u8; 1 << 20]).unwrap();
    }
    let bomb = w.finish().unwrap().into_inner();
    assert!(bomb.len() < 200_000, "{}", bomb.len());
    assert_eq!(problem(&message(&[(&named("bomb.zip"), &bomb)])), None);
}

#[test]
fn nested_messages_are_looked_into() {
    let inner = b"From: x@y.test\r\nSubject: fwd\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"i\"\r\n\r\n\
--i\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--i\r\nContent-Type: application/octet-stream; name=\"payload.hta\"\r\n\r\nx\r\n--i--\r\n";
    let raw = message(&[("Content-Type: message/rfc822\r\n", inner)]);
    assert_eq!(refused_name(problem(&raw)), "payload.hta");
}

#[test]
fn count_and_size_limits() {
    let pdf = b"%PDF".as_slice();
    let names: Vec<String> = (0..11).map(|i| named(&format!("nf{i}.pdf"))).collect();
    let parts: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), pdf)).collect();
    assert_eq!(
        problem(&message(&parts)),
        Some(AttachmentProblem::TooMany { count: 11, max: 10 })
    );
    let big = vec![b'a'; 11 * 1024 * 1024];
    match problem(&message(&[(&named("catalogo.pdf"), &big)])) {
        Some(AttachmentProblem::TooBig { bytes, max }) => assert!(bytes > max),
        other => panic!("{other:?}"),
    }
    // Embedded images (inline, with a Content-ID) do not count.
    let inline = "Content-Type: image/png\r\nContent-ID: <logo>\r\nContent-Disposition: inline\r\n";
    let parts: Vec<(&str, &[u8])> = (0..11).map(|_| (inline, pdf)).collect();
    assert_eq!(problem(&message(&parts)), None);
}

#[test]
fn ten_thousand_parts_are_counted_not_crashed_on() {
    let mut raw = b"From: a@b.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n".to_vec();
    for i in 0..10_000 {
        raw.extend_from_slice(
            format!("--b\r\nContent-Type: text/plain; name=\"p{i}.txt\"\r\n\r\nx\r\n").as_bytes(),
        );
    }
    raw.extend_from_slice(b"--b--\r\n");
    match problem(&raw) {
        Some(AttachmentProblem::TooMany { count, .. }) => assert!(count >= 9_999, "{count}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn extensions() {
    assert_eq!(extension("a.PDF").as_deref(), Some("pdf"));
    assert_eq!(extension("a.tar.gz").as_deref(), Some("gz"));
    assert_eq!(extension(".bashrc"), None);
    assert_eq!(extension("noext"), None);
    assert_eq!(extension("x.exe\u{0}").as_deref(), Some("exe"));
}

#[test]
fn only_text_without_a_file_name_is_known_to_have_no_attachment() {
    let may = |header: &str| {
        let m = format!("{header}Subject: x\r\n\r\nbody\r\n");
        may_have_attachments(&crate::masking::Parsed::new(m.as_bytes()))
    };
    assert!(!may(""));
    assert!(!may("Content-Type: text/plain; charset=utf-8\r\n"));
    assert!(!may("Content-Type: TEXT/html\r\n"));
    assert!(may("Content-Type: multipart/mixed; boundary=b\r\n"));
    assert!(may("Content-Type: application/x-msdownload\r\n"));
    assert!(may("Content-Type: text/plain; name=\"run.js\"\r\n"));
    assert!(may(
        "Content-Type: text/plain\r\nContent-Disposition: attachment; filename=a.exe\r\n"
    ));
    assert!(may(
        "Content-Type: text/plain\r\nContent-Type: application/zip\r\n"
    ));
}
