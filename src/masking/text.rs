//! Known real addresses in free text: display names, addresses mail-parser
//! could not make sense of, fields too broken to parse. An address may be
//! written plainly or inside an RFC 2047 encoded word, which readers decode;
//! so encoded words are decoded here as mail-parser decodes them (leniently:
//! the charset may be any text but a line break), and one that holds a known
//! address is written again as UTF-8 encoded words of the masked text.
//! The end of a word (`?Q?data?=`) is decoded on its own as well, since the
//! start of the word may stand in another piece of the field, which a reader
//! puts together with this one.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use mail_parser::parsers::MessageStream;
use memchr::memmem;

use super::alias_map::AliasMap;
use super::encode::encoded_words;
use super::finder;

/// Whether `text` holds a known address, plain or in an encoded word.
pub(super) fn contains_known(text: &str, aliases: &AliasMap) -> bool {
    let bytes = text.as_bytes();
    aliases.may_be_in(bytes)
        && (finder::holds_known(bytes, aliases)
            || (memchr::memchr(b'?', bytes).is_some() && replace_in_place(bytes, aliases) != bytes))
}

/// Replace every known real address inside free text, ignoring case.
pub fn replace_text(text: &str, aliases: &AliasMap) -> String {
    String::from_utf8(replace_in_place(text.as_bytes(), aliases))
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A file name (a MIME parameter's value, decoded) with every known
/// address replaced, a file name's extension after its domain included.
pub(super) fn replace_in_file_name(name: &str, aliases: &AliasMap) -> String {
    let named = finder::replace_in(name.as_bytes(), aliases, finder::Context::FileName);
    replace_text(&String::from_utf8_lossy(&named), aliases)
}

/// `raw` with every known address replaced, in any spelling the finder
/// knows, plain or inside encoded words.
pub(super) fn replace_in_place(raw: &[u8], aliases: &AliasMap) -> Vec<u8> {
    if !aliases.may_be_in(raw) {
        return raw.to_vec();
    }
    let plain = finder::replace(raw, aliases);
    if memchr::memchr(b'?', &plain).is_none() {
        return plain;
    }
    let encoded = replace_encoded_words(&plain, aliases);
    replace_word_ends(&encoded, aliases)
}

/// The longest encoded word decoded here, from `=?` to `?=`. RFC 2047 allows
/// 75 characters; mail-parser takes any length, and a longer word is left to
/// the check of the finished field (`headers::checked`).
const MAX_WORD: usize = 1000;

/// Each span mail-parser would decode as an encoded word
/// (`=?charset?Q|B?data?=`) whose text holds a known address becomes UTF-8
/// encoded words of that text masked; the charset's bytes go with it. A
/// span that decodes is skipped whole, as a reader would skip it. Words that
/// fail to decode are read for at most a few times the length of `raw` in
/// all, so that a field made of word starts costs no more than a long one.
fn replace_encoded_words(raw: &[u8], aliases: &AliasMap) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut copied = 0;
    let mut i = 0;
    let mut work_left = 8 * raw.len() + 64 * 1024;
    while let Some(at) = memmem::find(&raw[i..], b"=?") {
        let start = i + at;
        let mut word = MessageStream::new(&raw[start + 1..raw.len().min(start + 1 + MAX_WORD)]);
        let decoded = word.decode_rfc2047();
        work_left = work_left.saturating_sub(word.offset());
        let Some(text) = decoded else {
            if work_left == 0 {
                break;
            }
            i = start + 1;
            continue;
        };
        let end = start + 1 + word.offset();
        let masked = replace_text(&text, aliases);
        if masked != text {
            out.extend_from_slice(&raw[copied..start]);
            out.extend_from_slice(encoded_words(&masked).as_bytes());
            copied = end;
        }
        i = end;
    }
    out.extend_from_slice(&raw[copied..]);
    out
}

/// Each `?Q?data?=` or `?B?data?=` whose data decodes to bytes holding a
/// known address gets its data written again, in the same encoding, with
/// the address masked; what precedes it (the charset, or text a reader may
/// join to it) stays. The data here is what encoders write: no `?` and no
/// white space, so each byte is looked at a bounded number of times. Words
/// written more loosely are left to the check of the finished field.
fn replace_word_ends(raw: &[u8], aliases: &AliasMap) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut copied = 0;
    let mut i = 0;
    while let Some(at) = memchr::memchr(b'?', &raw[i..]) {
        let marker = i + at;
        i = marker + 1;
        let q = match raw.get(marker + 1..marker + 3) {
            Some([b'q' | b'Q', b'?']) => true,
            Some([b'b' | b'B', b'?']) => false,
            _ => continue,
        };
        let start = marker + 3;
        let Some(len) = raw[start..]
            .iter()
            .position(|&b| b == b'?' || b.is_ascii_whitespace())
        else {
            break;
        };
        let end = start + len;
        if raw.get(end..end + 2) != Some(b"?=") {
            continue;
        }
        let mut data = MessageStream::new(&raw[start..end + 2]);
        let decoded = if q {
            data.decode_quoted_printable_word()
        } else {
            data.decode_base64_word()
        };
        let Some(bytes) = decoded else { continue };
        let masked = replace_in_place(&bytes, aliases);
        if masked != bytes {
            out.extend_from_slice(&raw[copied..start]);
            if q {
                out.extend_from_slice(&q_encode(&masked));
            } else {
                out.extend_from_slice(STANDARD.encode(&masked).as_bytes());
            }
            copied = end;
            i = end;
        }
    }
    out.extend_from_slice(&raw[copied..]);
    out
}

/// RFC 2047's Q encoding: letters and digits as they are, a space as `_`,
/// every other byte as `=XX`.
fn q_encode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for &b in bytes {
        match b {
            b' ' => out.push(b'_'),
            b if b.is_ascii_alphanumeric() => out.push(b),
            b => out.extend_from_slice(format!("={b:02X}").as_bytes()),
        }
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
