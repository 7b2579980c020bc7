//! The last line of defence: whether any reader would find a participant's
//! address in a field, and the generic fix when one would.
//!
//! A field is read the ways its readers read it: its raw bytes (plain and
//! obsolete spellings, `%XX` and `\` escapes, encoded words and their ends),
//! its text unfolded with encoded words decoded, its addresses and display
//! names as mail-parser and as `address_list` read them, and its MIME
//! parameters with RFC 2231 continuations joined and decoded. A field is
//! clean when none of them finds a participant.

use mail_parser::parsers::MessageStream;
use mail_parser::{Address, HeaderValue};

use super::alias_map::AliasMap;
use super::encode::unstructured;
use super::rules::{read_as_addresses, treatment, Treatment};
use super::section::{Field, Parsed};
use super::text::{contains_known, replace_in_file_name, replace_in_place, replace_text};

/// Whether a reader would find a known address in the field `f`. Each
/// field is read the ways its readers read it: every field raw and, when it
/// has encoded words, decoded; the fields readers take for addresses
/// (`rules::read_as_addresses`) also as mail-parser reads address lists,
/// and the MIME parameter fields also as parameters.
pub(super) fn reads_known(f: &Field<'_>, aliases: &AliasMap) -> bool {
    let value = f.value;
    if !aliases.may_be_in(value) {
        return false;
    }
    let text = String::from_utf8_lossy(value);
    contains_known(&text, aliases)
        || (memchr::memmem::find(value, b"=?").is_some()
            && unfolded_text(value).is_some_and(|t| contains_known(&t, aliases)))
        || (read_as_addresses(f.name) && mail_parser_reads_known(value, aliases))
        || (treatment(f.name) == Treatment::Parameters && parameters_read_known(value, aliases))
}

/// The value as an unstructured field reads: unfolded, encoded words decoded.
pub(super) fn unfolded_text(value: &[u8]) -> Option<String> {
    match MessageStream::new(value).parse_unstructured() {
        HeaderValue::Text(t) => Some(t.into_owned()),
        _ => None,
    }
}

fn mail_parser_reads_known(value: &[u8], aliases: &AliasMap) -> bool {
    let shows = |name: Option<&str>, address: Option<&str>| {
        address.is_some_and(|a| aliases.contains(a) || contains_known(a, aliases))
            || name.is_some_and(|n| contains_known(n, aliases))
    };
    match MessageStream::new(value).parse_address() {
        HeaderValue::Address(Address::List(list)) => list
            .iter()
            .any(|a| shows(a.name.as_deref(), a.address.as_deref())),
        HeaderValue::Address(Address::Group(groups)) => groups.iter().any(|g| {
            g.name
                .as_deref()
                .is_some_and(|n| contains_known(n, aliases))
                || g.addresses
                    .iter()
                    .any(|a| shows(a.name.as_deref(), a.address.as_deref()))
        }),
        _ => false,
    }
}

fn parameters_read_known(value: &[u8], aliases: &AliasMap) -> bool {
    if memchr::memchr(b'=', value).is_none() {
        return false;
    }
    match MessageStream::new(value).parse_content_type() {
        HeaderValue::ContentType(ct) => ct.attributes.iter().flatten().any(|a| {
            replace_in_file_name(&a.value, aliases) != a.value || contains_known(&a.name, aliases)
        }),
        _ => false,
    }
}

/// Whether `field` (a whole field, name to line break) reads back as one
/// field in which no reader finds a known address.
pub(super) fn reads_clean(field: &[u8], aliases: &AliasMap) -> bool {
    let again = Parsed::new(field);
    match (
        again.fields.as_slice(),
        again.dropped.is_empty(),
        again.rest,
    ) {
        ([f], true, []) => f.raw.len() == field.len() && !reads_known(f, aliases),
        _ => false,
    }
}

/// What the defence made of a field.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Defended {
    /// No reader finds a known address: the field as received.
    Clean,
    /// Known addresses were replaced by their aliases.
    Fixed(Vec<u8>),
    /// The field could not be masked in a way every reader agrees with.
    Remove,
}

/// Mask what no specific rule handled: every known address in the field's
/// raw bytes replaced in place; failing that, the field written again as
/// its decoded text, masked; failing that, removed.
pub(super) fn defend(f: &Field<'_>, aliases: &AliasMap) -> Defended {
    if !reads_known(f, aliases) {
        return Defended::Clean;
    }
    let replaced = replace_in_place(f.raw, aliases);
    if reads_clean(&replaced, aliases) {
        return Defended::Fixed(replaced);
    }
    if let Some(text) = unfolded_text(f.value) {
        let rewritten = unstructured(f.name, &replace_text(&text, aliases));
        if reads_clean(rewritten.as_bytes(), aliases) {
            return Defended::Fixed(rewritten.into_bytes());
        }
    }
    Defended::Remove
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> AliasMap {
        AliasMap::from([(
            "sac@acme-store.com".to_string(),
            "c2db2cdaaba1ba2f6171492a5c6accf5@ct.test".to_string(),
        )])
    }

    fn field(raw: &str) -> Defended {
        let p = Parsed::new(raw.as_bytes());
        defend(&p.fields[0], &map())
    }

    #[test]
    fn each_reading_finds_its_spelling() {
        let reads = |raw: &str| {
            let p = Parsed::new(raw.as_bytes());
            reads_known(&p.fields[0], &map())
        };
        for raw in [
            "X: sac@acme-store.com\r\n",
            "X: =?utf-8?b?c2FjQGFjbWUtc3RvcmUuY29t?=\r\n",
            "X: =?utf-8?q?sac=40acme-store.com?=\r\n",
            "Content-Disposition: attachment; filename*0*=utf-8''sac%40acme; filename*1*=-store.com.pdf\r\n",
            "To: \"qa\" <\"sac\"@acme-store.com>\r\n",
            "X: sac\r\n @acme-store.com\r\n",
        ] {
            assert!(reads(raw), "{raw:?}");
        }
        for raw in [
            "X: x@y.test\r\n",
            "X: plain text\r\n",
            "X: xsac@acme-store.com\r\n",
        ] {
            assert!(!reads(raw), "{raw:?}");
        }
    }

    #[test]
    fn fixes_in_place_then_by_rewriting_then_removes() {
        assert_eq!(field("X-Note: ok\r\n"), Defended::Clean);
        assert_eq!(
            field("X-Contact: write to sac@acme-store.com\r\n"),
            Defended::Fixed(
                b"X-Contact: write to c2db2cdaaba1ba2f6171492a5c6accf5@ct.test\r\n".to_vec()
            )
        );
        // Two encoded words that only together spell the address.
        let Defended::Fixed(out) =
            field("Subject: =?utf-8?q?sac?= =?utf-8?q?=40acme-store.com?=\r\n")
        else {
            panic!()
        };
        assert!(
            reads_clean(&out, &map()),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }
}
