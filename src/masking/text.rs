//! Known real addresses in free text: display names, addresses mail-parser
//! could not make sense of, fields too broken to parse. An address may be
//! written plainly or inside an RFC 2047 encoded word, which readers decode;
//! so encoded words are decoded here as mail-parser decodes them (leniently:
//! the charset may be any text but a line break), and one that holds a known
//! address is written again as UTF-8 encoded words of the masked text.

use mail_parser::parsers::MessageStream;
use memchr::memmem;

use super::encode::encoded_words;
use super::headers::AliasMap;

pub(super) fn contains_known(text: &str, aliases: &AliasMap) -> bool {
    replace_in_place(text.as_bytes(), aliases) != text.as_bytes()
}

/// Replace every known real address inside free text, ignoring case.
pub fn replace_text(text: &str, aliases: &AliasMap) -> String {
    String::from_utf8(replace_in_place(text.as_bytes(), aliases))
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// `raw` with every known address replaced, plain or encoded.
pub(super) fn replace_in_place(raw: &[u8], aliases: &AliasMap) -> Vec<u8> {
    replace_encoded_words(replace_plain(raw, aliases), aliases)
}

/// Bytes that continue an address: a match followed or preceded by one is
/// part of a longer address (a soft alias contains its real address).
fn continues_address(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

fn replace_plain(raw: &[u8], aliases: &AliasMap) -> Vec<u8> {
    let mut out = raw.to_vec();
    for (real, alias) in aliases {
        let needle = real.as_bytes();
        if needle.is_empty() {
            continue;
        }
        let mut i = 0;
        while i + needle.len() <= out.len() {
            let end = i + needle.len();
            let before_ok = i == 0 || !(continues_address(out[i - 1]) || out[i - 1] == b'.');
            let after_ok = match out.get(end) {
                None => true,
                Some(b'.') => !out.get(end + 1).is_some_and(|&b| continues_address(b)),
                Some(&b) => !continues_address(b),
            };
            if before_ok && after_ok && out[i..end].eq_ignore_ascii_case(needle) {
                out.splice(i..end, alias.bytes());
                i += alias.len();
            } else {
                i += 1;
            }
        }
    }
    out
}

/// Each span mail-parser would decode as an encoded word
/// (`=?charset?Q|B?data?=`) whose text holds a known address becomes UTF-8
/// encoded words of that text masked; the charset's bytes go with it. A
/// span that decodes is skipped whole, as a reader would skip it.
pub(super) fn replace_encoded_words(mut out: Vec<u8>, aliases: &AliasMap) -> Vec<u8> {
    let mut i = 0;
    while let Some(at) = memmem::find(&out[i..], b"=?") {
        let start = i + at;
        let mut word = MessageStream::new(&out[start + 1..]);
        let Some(text) = word.decode_rfc2047() else {
            i = start + 1;
            continue;
        };
        let end = start + 1 + word.offset();
        let masked = replace_text(&text, aliases);
        if masked == text {
            i = end;
            continue;
        }
        let again = encoded_words(&masked);
        out.splice(start..end, again.bytes());
        i = start + again.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> AliasMap {
        AliasMap::from([(
            "jurgen@example.net".to_string(),
            "f44789d54cb7909fb48a75629fbe7cfa@ct.test".to_string(),
        )])
    }

    fn decoded(field: &[u8]) -> String {
        let mut s = MessageStream::new(field);
        match s.parse_address() {
            mail_parser::HeaderValue::Address(a) => a
                .iter()
                .map(|a| format!("{:?} {:?}", a.name, a.address))
                .collect::<Vec<_>>()
                .join(", "),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn plain_addresses_are_replaced_where_they_stand_alone() {
        let text = "write to Jurgen@Example.net. or xjurgen@example.net";
        assert_eq!(
            replace_text(text, &map()),
            "write to f44789d54cb7909fb48a75629fbe7cfa@ct.test. or xjurgen@example.net"
        );
    }

    /// The fuzzer's case: an encoded word whose "charset" ran over what
    /// looked like a group and a mailbox, and decoded to a display name with
    /// the real address in it.
    #[test]
    fn an_encoded_word_holding_a_known_address_is_masked() {
        let raw = b" =?odd: x <y@z>, charset?q?J=C3=BCrgen_jurgen=40example=2Enet?= <a@b.c>\r\n";
        assert!(
            decoded(raw).contains("jurgen@example.net"),
            "{}",
            decoded(raw)
        );
        let out = replace_in_place(raw, &map());
        let after = decoded(&out);
        assert!(!after.contains("jurgen@example.net"), "{after}");
        assert!(
            after.contains("Jürgen f44789d54cb7909fb48a75629fbe7cfa@ct.test"),
            "{after}"
        );
        assert!(out.ends_with(b" <a@b.c>\r\n"));
    }

    #[test]
    fn base64_and_double_encoded_words_are_masked_too() {
        let b64 = format!("=?utf-8?B?{}?=", "anVyZ2VuQGV4YW1wbGUubmV0");
        let out = replace_text(&b64, &map());
        assert_eq!(
            decoded(format!("{out} <a@b.c>").as_bytes()),
            decoded(
                b"=?UTF-8?B?ZjQ0Nzg5ZDU0Y2I3OTA5ZmI0OGE3NTYyOWZiZTdjZmFAY3QudGVzdA==?= <a@b.c>"
            )
        );
        // A word whose text is itself a word with the address inside.
        let double = "=?utf-8?q?=3D=3Futf-8=3Fq=3Fjurgen=3D40example.net=3F=3D?=";
        assert!(!replace_text(double, &map()).contains("=40example"));
    }

    #[test]
    fn words_without_a_known_address_and_broken_words_stay_as_they_are() {
        for text in [
            "=?UTF-8?B?Sm/Do28=?= =?iso-8859-1?q?Keld_J=F8rn?=",
            "=? =?x =?ab?x?y?= =?ab?q?unterminated",
            "a=?",
        ] {
            assert_eq!(replace_text(text, &map()), text);
        }
    }
}
