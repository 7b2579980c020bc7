//! The header masker over arbitrary messages. Every mailbox found in From,
//! Sender, Reply-To, To and Cc that could be a participant's address gets an
//! alias, as the relay does for an order's participants.
//!
//! Checks, besides "no panic":
//! - the trace field comes first and the body (everything after the header)
//!   is passed through byte for byte;
//! - fields that are not masked keep their bytes and their order;
//! - no real address is left: parsing the masked fields again finds none of
//!   them as an address nor inside a display name;
//! - the timeline summary of the masked copy can be made.

#![no_main]

use ct_relay::alias::split_address;
use ct_relay::masking::{headers::replace_text, mask, summarize, AliasMap, Parsed, MASKED_FIELDS};
use libfuzzer_sys::fuzz_target;
use mail_parser::parsers::MessageStream;
use mail_parser::{Address, HeaderValue};

const ALIAS_DOMAIN: &str = "ct.fuzz.test";
const TRACE: &[u8] = b"Received: from fuzz by mx.fuzz.test; Mon, 23 Nov 2026 10:00:00 +0000\r\n";

fn is_masked(name: &str) -> bool {
    MASKED_FIELDS.iter().any(|m| m.eq_ignore_ascii_case(name))
}

/// (address, display name) of every mailbox in a field value.
fn mailboxes(value: &[u8]) -> Vec<(String, String)> {
    let addrs = match MessageStream::new(value).parse_address() {
        HeaderValue::Address(Address::List(list)) => list,
        HeaderValue::Address(Address::Group(groups)) => {
            groups.into_iter().flat_map(|g| g.addresses).collect()
        }
        _ => Vec::new(),
    };
    addrs
        .into_iter()
        .map(|a| {
            (
                a.address.as_deref().unwrap_or_default().to_lowercase(),
                a.name.as_deref().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fuzz_target!(|message: &[u8]| {
    let parsed = Parsed::new(message);
    let mut aliases = AliasMap::new();
    for real in parsed.addresses(&MASKED_FIELDS) {
        let participant = split_address(&real)
            .is_ok_and(|(_, domain)| !domain.to_ascii_lowercase().ends_with(ALIAS_DOMAIN));
        if participant && !aliases.contains_key(&real) {
            let alias = format!("{:032x}@{ALIAS_DOMAIN}", aliases.len() + 1);
            aliases.insert(real, alias);
        }
    }
    let out = mask(&parsed, &aliases, TRACE);

    assert!(out.starts_with(TRACE));
    assert!(out.ends_with(parsed.rest), "the body changed");

    let again = Parsed::new(&out[TRACE.len()..out.len() - parsed.rest.len()]);
    let kept = |p: &Parsed<'_>| -> Vec<Vec<u8>> {
        p.fields
            .iter()
            .filter(|f| !is_masked(f.name))
            .map(|f| f.raw.to_vec())
            .collect()
    };
    assert_eq!(
        kept(&parsed),
        kept(&again),
        "a field that is not masked changed"
    );

    for field in again.fields.iter().filter(|f| is_masked(f.name)) {
        for (address, name) in mailboxes(field.value) {
            assert!(
                !aliases.contains_key(&address),
                "real address left in {}: {:?}",
                field.name,
                String::from_utf8_lossy(field.raw)
            );
            assert_eq!(
                replace_text(&name, &aliases),
                name,
                "real address left in a display name in {}",
                field.name
            );
        }
    }

    let _ = summarize(&out, &aliases, ALIAS_DOMAIN);
});
