//! The header masker over arbitrary messages. Every address found in an
//! address field that could be a participant's gets an alias, as the relay
//! does for an order's participants; `jurgen@example.net` is always one,
//! so seeds can spell it in the fields that are not address fields.
//!
//! The input is first made what DATA can deliver (CRLF lines, no NUL).
//!
//! Checks, besides "no panic":
//! - the trace field comes first and the body (everything after the
//!   header) is passed through byte for byte;
//! - a field in which no reader finds a participant keeps its bytes and its
//!   place, unless its rule removes it (envelope fields, a forged verdict,
//!   an ARC set another of whose fields names a participant);
//! - no participant's address is left anywhere in the header: neither the
//!   masker's readers (`shows_participant`) nor mail-parser reading the
//!   whole masked message finds one, as an address, in a display name, in
//!   decoded text or in a MIME parameter;
//! - the timeline summary of the masked copy can be made.

#![no_main]

use ct_relay::alias::split_address;
use ct_relay::masking::rules::{treatment, Treatment};
use ct_relay::masking::{
    addresses, mask, replace_text, shows_participant, summarize, AliasMap, Masker, Parsed,
};
use libfuzzer_sys::fuzz_target;

/// mail-parser panics on some inputs; `mime::parse` catches that, and the
/// fuzzer's hook (which aborts) must let it.
static QUIET: std::sync::Once = std::sync::Once::new();
use mail_parser::HeaderValue;

const ALIAS_DOMAIN: &str = "ct.fuzz.test";
const TRACE: &[u8] = b"Received: from fuzz by mx.fuzz.test; Mon, 23 Nov 2026 10:00:00 +0000\r\n";
const AUTHSERV_ID: &str = "mx.fuzz.test";

fn masked_id(id: &str) -> String {
    format!("m.{:032x}@{ALIAS_DOMAIN}", id.len())
}

fn participants(parsed: &Parsed<'_>) -> AliasMap {
    let mut aliases = AliasMap::new();
    aliases.insert("jurgen@example.net", &format!("{:032x}@{ALIAS_DOMAIN}", 0));
    let names: Vec<&str> = parsed
        .fields
        .iter()
        .filter(|f| matches!(treatment(f.name), Treatment::Addresses { .. }))
        .map(|f| f.name)
        .collect();
    for real in addresses(&parsed.fields, &names) {
        let participant = split_address(&real)
            .is_ok_and(|(_, domain)| !domain.to_ascii_lowercase().ends_with(ALIAS_DOMAIN));
        if participant && !aliases.contains(&real) {
            let alias = format!("{:032x}@{ALIAS_DOMAIN}", aliases.len() + 1);
            aliases.insert(&real, &alias);
        }
    }
    aliases
}

/// Whether masking may drop or rewrite `f` although no reader finds a
/// participant in it.
fn may_go(f: &ct_relay::masking::Field<'_>, arc_named: bool, aliases: &AliasMap) -> bool {
    match treatment(f.name) {
        Treatment::Envelope => true,
        Treatment::ArcSet => arc_named,
        // A forged verdict (the relay's own authserv-id) goes too.
        Treatment::Verdict => lower(f.value).contains(AUTHSERV_ID),
        // An id with a participant's address at the end of its left part
        // (`abc.jurgen@…`) is masked too.
        Treatment::MessageIds => aliases_in(&lower(f.value), aliases),
        _ => false,
    }
}

fn lower(value: &[u8]) -> String {
    String::from_utf8_lossy(value).to_ascii_lowercase()
}

fn aliases_in(text: &str, aliases: &AliasMap) -> bool {
    aliases.iter().any(|(real, _)| text.contains(real))
}

/// What mail-parser finds of a participant in a header value.
fn parser_finds(value: &HeaderValue<'_>, aliases: &AliasMap) -> Option<String> {
    let shows = |t: &str| replace_text(t, aliases) != t || aliases.contains(t);
    match value {
        HeaderValue::Address(a) => a.iter().find_map(|a| {
            let address = a.address.as_deref().unwrap_or_default();
            let name = a.name.as_deref().unwrap_or_default();
            (shows(address) || shows(name)).then(|| format!("{name:?} <{address}>"))
        }),
        HeaderValue::Text(t) => shows(t).then(|| t.to_string()),
        HeaderValue::TextList(list) => list.iter().find(|t| shows(t)).map(|t| t.to_string()),
        HeaderValue::ContentType(ct) => ct
            .attributes
            .iter()
            .flatten()
            .find(|a| shows(&a.value))
            .map(|a| a.value.to_string()),
        _ => None,
    }
}

/// What DATA can hand the masker: the relay refuses a bare CR or LF and a
/// NUL byte (554 5.6.0, `smtp::data`), so every line ends with CRLF and no
/// NUL is left. The fuzzer's bytes are made such a message first: a bare CR
/// or LF becomes CRLF, a NUL goes.
fn as_received(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + 16);
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            0 => {}
            b'\r' if input.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 1;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

fuzz_target!(|input: &[u8]| {
    QUIET.call_once(ct_relay::mime::quiet_parser_panics);
    let message = &as_received(input)[..];
    let parsed = Parsed::new(message);
    let aliases = participants(&parsed);
    let masker = Masker {
        aliases: &aliases,
        masked_id: &masked_id,
        authserv_id: AUTHSERV_ID,
        drop_arc: false,
    };
    let out = mask(&parsed, &masker, TRACE).content;

    assert!(out.starts_with(TRACE));
    assert!(out.ends_with(parsed.rest), "the body changed");
    let mut header_end = out.len() - parsed.rest.len();
    if parsed.needs_separator {
        assert!(out[..header_end].ends_with(b"\r\n"));
        header_end -= 2;
    }
    let header = &out[TRACE.len()..header_end];
    let again = Parsed::new(header);

    // Fields no reader finds a participant in keep their bytes and order.
    let arc_named = parsed
        .fields
        .iter()
        .any(|f| treatment(f.name) == Treatment::ArcSet && shows_participant(f, &aliases));
    let kept: Vec<&[u8]> = parsed
        .fields
        .iter()
        .filter(|f| !shows_participant(f, &aliases) && !may_go(f, arc_named, &aliases))
        .filter(|f| !matches!(treatment(f.name), Treatment::Addresses { .. }))
        .map(|f| f.raw)
        .collect();
    let mut written = again.fields.iter().map(|f| f.raw);
    for field in kept {
        assert!(
            written.any(|w| w == field),
            "a field without a participant changed or moved: {:?}",
            String::from_utf8_lossy(field)
        );
    }

    for field in &again.fields {
        assert!(
            !shows_participant(field, &aliases),
            "a participant's address left in {}: {:?}",
            field.name,
            String::from_utf8_lossy(field.raw)
        );
    }
    if let Some(read) = ct_relay::mime::parse(&out[..header_end]) {
        for h in read.headers() {
            if let Some(found) = parser_finds(&h.value, &aliases) {
                panic!(
                    "mail-parser finds a participant in {}: {found}",
                    h.name.as_str()
                );
            }
        }
    }

    let _ = summarize(&out, &aliases, ALIAS_DOMAIN);
});
