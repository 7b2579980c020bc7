//! A next hop's reply or a returned report names the recipient in many
//! spellings: `<addr>`, `'addr'`, `user=addr`, `addr%40domain`, VERP's
//! `bounce+local=domain@…`, any case; some only the mailbox's local part
//! (`mailbox john.doe unknown`, `john.doe+tag@…`, `john.doe at domain`).
//! What is stored, logged, shown on the timeline or sent back in the
//! relay's notice has every spelling the masking finder knows replaced by
//! the alias; if the local part is still there after that, in clear or
//! percent-encoded, the text is withheld and only the codes are kept.

use crate::masking::{percent_at, replace_text, AliasMap};

/// `reply` fit to store and show: `real` replaced by `alias`, or only the
/// reply's codes when `real`'s local part would still be in it.
pub fn redact(reply: &str, real: &str, alias: &str) -> String {
    let mut map = AliasMap::new();
    map.insert(real, alias);
    let replaced = replace_text(reply, &map);
    let local = real.rsplit_once('@').map_or(real, |(l, _)| l);
    let local = local.trim_matches('"').to_lowercase();
    let decoded = percent_decoded(&replaced).to_lowercase();
    if local.is_empty() || !holds_word(&decoded, &local) {
        return replaced;
    }
    let codes: Vec<&str> = reply
        .split_whitespace()
        .take(2)
        .take_while(|w| {
            w.chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
        })
        .collect();
    let codes = codes.join(" ");
    let sep = if codes.is_empty() { "" } else { " " };
    format!("{codes}{sep}(the next hop's text is withheld: it names the recipient {alias})")
}

/// `%XX` sequences decoded (as far as they make text), the rest kept.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match percent_at(bytes, i) {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `word` is in `text` with no letter or digit right before or
/// after it.
fn holds_word(text: &str, word: &str) -> bool {
    let bounded = |c: Option<char>| !c.is_some_and(|c| c.is_alphanumeric());
    text.match_indices(word).any(|(at, _)| {
        bounded(text[..at].chars().next_back()) && bounded(text[at + word.len()..].chars().next())
    })
}

#[cfg(test)]
mod tests {
    use super::redact;

    const REAL: &str = "John.Doe@Example.com";
    const ALIAS: &str = "c1@ct.test";

    #[test]
    fn every_spelling_of_the_address_becomes_the_alias() {
        for (reply, redacted) in [
            ("550 5.1.1 <John@Example.com>: unknown", None),
            (
                "550 5.1.1 <john.doe@example.com>: unknown",
                Some("550 5.1.1 <c1@ct.test>: unknown"),
            ),
            (
                "550 5.1.1 'JOHN.DOE@EXAMPLE.COM' unknown",
                Some("550 5.1.1 'c1@ct.test' unknown"),
            ),
            (
                "550 5.1.1 user=john.doe@example.com",
                Some("550 5.1.1 user=c1@ct.test"),
            ),
            (
                "550 5.1.1 john.doe%40example.com",
                Some("550 5.1.1 c1%40ct.test"),
            ),
            (
                "550 5.1.1 \"john.doe\"@example.com",
                Some("550 5.1.1 c1@ct.test"),
            ),
        ] {
            let got = redact(reply, REAL, ALIAS);
            match redacted {
                Some(want) => assert_eq!(got, want, "{reply}"),
                None => assert_eq!(got, reply),
            }
        }
    }

    /// Where only the local part is left, the text goes and the codes stay.
    #[test]
    fn a_reply_still_naming_the_mailbox_keeps_only_its_codes() {
        for reply in [
            "550 5.1.1 mailbox john.doe unknown",
            "550 5.1.1 john.doe+shop@example.com: no such user",
            "550 5.1.1 JOHN.DOE at example.com",
            "550 5.1.1 john%2Edoe%40example%2Ecom",
            "452 4.2.2 Mailbox full: john.doe",
        ] {
            let got = redact(reply, REAL, ALIAS);
            assert!(!got.to_lowercase().contains("john"), "{reply} -> {got}");
            assert!(got.ends_with("names the recipient c1@ct.test)"), "{got}");
            let codes: String = reply.split(' ').take(2).collect::<Vec<_>>().join(" ");
            assert!(got.starts_with(&codes), "{got}");
        }
        // A word that only contains the local part is no reason.
        let reply = "550 5.1.1 xjohn.doex@else.example unknown";
        assert_eq!(redact(reply, REAL, ALIAS), reply);
    }
}
