//! Address fields (From, To, Reply-To, Resent-*, Mail-Followup-To, …): each
//! participant's address becomes its alias, display names are kept, and the
//! field is written again as valid mailboxes. A field in which no reader
//! finds a participant keeps its bytes.

use super::address_list::{self, AddrSpec, Item, Mailbox};
use super::alias_map::AliasMap;
use super::defence::{reads_clean, reads_known};
use super::encode::{fold_addresses, render_mailbox, render_phrase};
use super::finder;
use super::section::Field;
use super::text::{contains_known, replace_in_place, replace_text};

/// The masked field, or `None` when it stays as received.
pub(super) fn mask(f: &Field<'_>, aliases: &AliasMap) -> Option<Vec<u8>> {
    if !aliases.may_be_in(f.value) {
        return None;
    }
    // Known addresses in spellings the structure would hide (`"sac"@…`,
    // `sac @ …`) become aliases first; then the field is read.
    let value = finder::replace(f.value, aliases);
    let items = address_list::parse(&value);
    if value == f.value && !items_show_known(&items, aliases) && !reads_known(f, aliases) {
        return None;
    }
    let rendered: Vec<String> = items
        .iter()
        .filter_map(|i| match i {
            Item::Mailbox(m) => render(m, aliases),
            Item::Group { name, members } => {
                let members: Vec<String> =
                    members.iter().filter_map(|m| render(m, aliases)).collect();
                Some(format!(
                    "{}: {};",
                    render_phrase(&replace_text(name, aliases)),
                    members.join(", ")
                ))
            }
        })
        .collect();
    let field = if rendered.is_empty() {
        replace_in_place(f.raw, aliases)
    } else {
        // An encoded word can run across what was read as several mailboxes
        // and come back whole in the written field: read it once more.
        replace_in_place(fold_addresses(f.name, &rendered).as_bytes(), aliases)
    };
    Some(checked(f, &items, aliases, field))
}

fn items_show_known(items: &[Item], aliases: &AliasMap) -> bool {
    items
        .iter()
        .any(|i| matches!(i, Item::Group { name, .. } if contains_known(name, aliases)))
        || address_list::mailboxes(items).any(|m| {
            m.address
                .as_ref()
                .is_some_and(|a| aliases.contains(&a.plain()))
                || m.name
                    .as_deref()
                    .is_some_and(|n| contains_known(n, aliases))
        })
}

/// One mailbox written again: its alias for a participant, its name masked.
/// A mailbox without an address is no mailbox a reply can go to: it goes.
fn render(m: &Mailbox, aliases: &AliasMap) -> Option<String> {
    let address = m.address.as_ref()?;
    let written = match aliases.get(&address.plain()) {
        Some(alias) => alias.to_string(),
        None => masked_spec(address, aliases),
    };
    let name = m.name.as_deref().map(|n| replace_text(n, aliases));
    Some(render_mailbox(name.as_deref(), &written))
}

/// An address that is no participant's, as written, with any participant
/// address inside it (a route, a broken piece) masked.
fn masked_spec(address: &AddrSpec, aliases: &AliasMap) -> String {
    let spec = address.render();
    if contains_known(&spec, aliases) {
        replace_text(&spec, aliases)
    } else {
        spec
    }
}

/// `masked` (the whole field, name to CRLF) if it reads back as one field
/// in which no reader finds a known address. Otherwise the pieces of a
/// broken field came together in a way the replacements did not foresee,
/// and the field is written with addresses only: aliases, and the other
/// addresses that are plain `local@domain`; names and the rest go.
fn checked(f: &Field<'_>, items: &[Item], aliases: &AliasMap, masked: Vec<u8>) -> Vec<u8> {
    if reads_clean(&masked, aliases) {
        return masked;
    }
    let kept: Vec<String> = address_list::mailboxes(items)
        .filter_map(|m| {
            let plain = m.address.as_ref()?.plain();
            match aliases.get(&plain) {
                Some(alias) => Some(alias.to_string()),
                None => is_plain_address(&plain, aliases).then_some(plain),
            }
        })
        .collect();
    if kept.is_empty() {
        return format!("{}: undisclosed-recipients:;\r\n", f.name).into_bytes();
    }
    fold_addresses(f.name, &kept).into_bytes()
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

/// Addresses (canonical, in order of appearance) in the fields named
/// `names`: who a message is from, or who its replies go to.
pub fn addresses(fields: &[Field<'_>], names: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for f in fields.iter().filter(|f| names.iter().any(|n| f.is(n))) {
        for m in address_list::mailboxes(&address_list::parse(f.value)) {
            if let Some(a) = &m.address {
                out.push(super::alias_map::canonical(&a.plain()));
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "address_fields_tests.rs"]
mod tests;
