//! Header masking: in From, Sender, Reply-To, To and Cc, every known real
//! address is replaced by its alias. Only those fields change; every other
//! byte of the message, headers and body, is passed through as received.

use std::collections::HashMap;

use mail_parser::parsers::MessageStream;
use mail_parser::{Addr, Address, HeaderValue};

use super::encode::{fold_addresses, render_mailbox, render_phrase};
pub use super::text::replace_text;
use super::text::{contains_known, replace_in_place};

/// The header fields DESIGN.md section 3 masks.
pub const MASKED_FIELDS: [&str; 5] = ["from", "sender", "reply-to", "to", "cc"];
/// The fields that name who wrote the message.
pub const SENDER_FIELDS: [&str; 3] = ["from", "sender", "reply-to"];

/// One header field as received, continuation lines included.
#[derive(Debug, Clone, Copy)]
pub struct Field<'a> {
    pub name: &'a str,
    /// The whole field, name to final CRLF.
    pub raw: &'a [u8],
    /// After the colon, to the final CRLF inclusive.
    pub value: &'a [u8],
}

/// A message split into header fields and the body (which starts with the
/// empty line ending the header, if there is one).
#[derive(Debug)]
pub struct Parsed<'a> {
    pub fields: Vec<Field<'a>>,
    pub rest: &'a [u8],
}

impl<'a> Parsed<'a> {
    pub fn new(message: &'a [u8]) -> Self {
        let mut fields = Vec::new();
        let mut pos = 0;
        while pos < message.len() {
            let line_end = |from: usize| {
                message[from..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(message.len(), |p| from + p + 1)
            };
            let mut end = line_end(pos);
            let first = &message[pos..end];
            let Some(colon) = first.iter().position(|&b| b == b':') else {
                break; // the empty line, or not a header field: the body starts here
            };
            let name = &first[..colon];
            if name.is_empty() || !name.iter().all(|&b| b.is_ascii_graphic()) {
                break;
            }
            while end < message.len() && matches!(message[end], b' ' | b'\t') {
                end = line_end(end);
            }
            fields.push(Field {
                name: std::str::from_utf8(name).expect("graphic ASCII"),
                raw: &message[pos..end],
                value: &message[pos + colon + 1..end],
            });
            pos = end;
        }
        Parsed {
            fields,
            rest: &message[pos..],
        }
    }

    pub fn count(&self, name: &str) -> usize {
        self.fields
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case(name))
            .count()
    }

    /// Addresses (lowercased) in the named fields, in order of appearance.
    pub fn addresses(&self, names: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        for f in self.fields.iter().filter(|f| is_one_of(f.name, names)) {
            for addr in mailboxes(&parse_items(f.value)) {
                if let Some(a) = addr.address.as_deref() {
                    out.push(a.to_lowercase());
                }
            }
        }
        out
    }
}

fn is_one_of(name: &str, names: &[&str]) -> bool {
    names.iter().any(|n| name.eq_ignore_ascii_case(n))
}

/// Entries of an address field: plain mailboxes, or groups of them.
enum Item<'x> {
    Mailbox(Addr<'x>),
    Group(Option<String>, Vec<Addr<'x>>),
}

fn parse_items(value: &[u8]) -> Vec<Item<'_>> {
    match MessageStream::new(value).parse_address() {
        HeaderValue::Address(Address::List(list)) => list.into_iter().map(Item::Mailbox).collect(),
        HeaderValue::Address(Address::Group(groups)) => groups
            .into_iter()
            .map(|g| match g.name {
                Some(name) => Item::Group(Some(name.into_owned()), g.addresses),
                None => Item::Group(None, g.addresses),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Every mailbox of `items`, those in groups included, in order.
fn mailboxes<'a, 'x>(items: &'a [Item<'x>]) -> impl Iterator<Item = &'a Addr<'x>> {
    items.iter().flat_map(|i| match i {
        Item::Mailbox(a) => std::slice::from_ref(a),
        Item::Group(_, list) => list.as_slice(),
    })
}

/// Real addresses (lowercase) to aliases.
pub type AliasMap = HashMap<String, String>;

/// The message with `prepend` (a trace field) added on top and the masked
/// fields rewritten. Fields with no known real address keep their bytes.
/// Takes the message already split, as the caller has it for every order.
pub fn mask(parsed: &Parsed<'_>, aliases: &AliasMap, prepend: &[u8]) -> Vec<u8> {
    let size: usize = parsed.fields.iter().map(|f| f.raw.len()).sum::<usize>() + parsed.rest.len();
    let mut out = Vec::with_capacity(size + prepend.len() + 256);
    out.extend_from_slice(prepend);
    for f in &parsed.fields {
        if is_one_of(f.name, &MASKED_FIELDS) {
            out.extend_from_slice(&mask_field(f, aliases));
        } else {
            out.extend_from_slice(f.raw);
        }
    }
    out.extend_from_slice(parsed.rest);
    out
}

fn mask_field(f: &Field<'_>, aliases: &AliasMap) -> Vec<u8> {
    let items = parse_items(f.value);
    if !shows_known(&items, aliases) {
        // Nothing parsed as a known address. A field too broken to parse may
        // still hold one: replace it in place rather than let it through.
        let replaced = replace_in_place(f.raw, aliases);
        if replaced == f.raw {
            return replaced;
        }
        return checked(f, &items, aliases, replaced);
    }
    let mailbox = |a: &Addr<'_>| {
        let addr = a.address.as_deref().unwrap_or_default();
        // An "address" mail-parser could not make sense of comes back as it
        // was, and may hold a known address another reader would find.
        let masked = aliases
            .get(&addr.to_lowercase())
            .cloned()
            .unwrap_or_else(|| replace_text(addr, aliases));
        let name = a.name.as_deref().map(|n| replace_text(n, aliases));
        render_mailbox(name.as_deref(), &masked)
    };
    let rendered: Vec<String> = items
        .iter()
        .map(|i| match i {
            Item::Mailbox(a) => mailbox(a),
            Item::Group(name, list) => {
                let members: Vec<String> = list.iter().map(mailbox).collect();
                match name {
                    Some(n) => format!(
                        "{}: {};",
                        render_phrase(&replace_text(n, aliases)),
                        members.join(", ")
                    ),
                    None => members.join(", "),
                }
            }
        })
        .collect();
    // An encoded word can run across what was parsed as several mailboxes
    // and come back whole in the rendered field: read the field as a reader
    // would, once more.
    let field = replace_in_place(fold_addresses(f.name, &rendered).as_bytes(), aliases);
    checked(f, &items, aliases, field)
}

/// `masked` (the whole field, name to CRLF) if it reads back as one field in
/// which a reader finds no known address, as an address or inside a name.
/// Otherwise the pieces of a broken field came together in a way the
/// replacements above did not foresee, and the field is written with
/// addresses only: aliases, and the other addresses that are plain
/// `local@domain`; names and the rest go.
fn checked(f: &Field<'_>, items: &[Item<'_>], aliases: &AliasMap, masked: Vec<u8>) -> Vec<u8> {
    // Read back as the next hop splits a header: still one field.
    let again = Parsed::new(&masked);
    if let ([field], []) = (again.fields.as_slice(), again.rest) {
        if field.raw.len() == masked.len() && !shows_known(&parse_items(field.value), aliases) {
            return masked;
        }
    }
    let kept: Vec<String> = mailboxes(items)
        .filter_map(|a| {
            let addr = a.address.as_deref()?;
            match aliases.get(&addr.to_lowercase()) {
                Some(alias) => Some(alias.clone()),
                None => is_plain_address(addr, aliases).then(|| addr.to_string()),
            }
        })
        .collect();
    if kept.is_empty() {
        return format!("{}: undisclosed-recipients:;\r\n", f.name).into_bytes();
    }
    fold_addresses(f.name, &kept).into_bytes()
}

/// Whether a known real address is among `items` (mail-parser's reading of
/// a field): as an address, or inside an address, a display name or a
/// group's name.
fn shows_known(items: &[Item<'_>], aliases: &AliasMap) -> bool {
    let in_mailbox = |a: &Addr<'_>| {
        a.address.as_deref().is_some_and(|addr| {
            aliases.contains_key(&addr.to_lowercase()) || contains_known(addr, aliases)
        }) || a
            .name
            .as_deref()
            .is_some_and(|n| contains_known(n, aliases))
    };
    let in_group_name =
        |i: &Item<'_>| matches!(i, Item::Group(Some(name), _) if contains_known(name, aliases));
    mailboxes(items).any(in_mailbox) || items.iter().any(in_group_name)
}

/// `local@domain` with nothing a reader could decode or split: atext and
/// dots on both sides of one `@`, and no known address inside.
fn is_plain_address(addr: &str, aliases: &AliasMap) -> bool {
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/^_`{|}~.".contains(&b);
    matches!(addr.split_once('@'), Some((local, domain))
        if !local.is_empty() && !domain.is_empty()
            && local.bytes().chain(domain.bytes()).all(atext))
        && !contains_known(addr, aliases)
}

#[cfg(test)]
#[path = "headers_tests.rs"]
mod tests;
