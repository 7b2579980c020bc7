//! What the timeline says of a message: subject, first words, attachment
//! names, with every address in them masked or hidden.

use mail_parser::MimeHeaders;

use super::alias_map::AliasMap;
use super::text::replace_text;

/// Words of the body kept on the timeline.
const FIRST_WORDS: usize = 30;
/// And at most this many characters of them.
const FIRST_WORDS_CHARS: usize = 200;

/// What the timeline shows of a message besides its addresses.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// The subject, masked.
    pub subject: String,
    /// The start of the text, masked.
    pub first_words: String,
    /// The attachments' file names, masked.
    pub attachment_names: Vec<String>,
}

/// Summarise a (masked) message. `alias_domain` addresses stay visible; known
/// real addresses become their aliases; any other address becomes `[address]`.
pub fn summarize(message: &[u8], aliases: &AliasMap, alias_domain: &str) -> Summary {
    let Some(parsed) = crate::mime::parse(message) else {
        return Summary::default();
    };
    // Control characters (NUL above all, which PostgreSQL text refuses) never
    // belong in a summary.
    let clean = |t: &str| {
        let printable: String = t
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        hide_addresses(&replace_text(&printable, aliases), alias_domain)
    };
    let body = parsed.body_text(0).unwrap_or_default();
    // Whole words up to the limits, so no address is cut before cleaning
    // (the text is cut to its length only after).
    let mut words = Vec::new();
    let mut chars = 0;
    let mut more = false;
    for word in body.split_whitespace() {
        if words.len() == FIRST_WORDS || chars > FIRST_WORDS_CHARS {
            more = true;
            break;
        }
        chars += word.chars().count() + 1;
        words.push(word);
    }
    let mut first_words = clean(&words.join(" "));
    if first_words.chars().count() > FIRST_WORDS_CHARS {
        first_words = first_words.chars().take(FIRST_WORDS_CHARS).collect();
        first_words.push('…');
    } else if more {
        first_words.push('…');
    }
    Summary {
        subject: clean(parsed.subject().unwrap_or_default()),
        first_words,
        attachment_names: parsed
            .attachments()
            .filter_map(|a| a.attachment_name().map(&clean))
            .collect(),
    }
}

/// Hide any e-mail address not under the alias domain.
fn hide_addresses(text: &str, alias_domain: &str) -> String {
    let suffix = alias_domain.to_lowercase();
    text.split(' ')
        .map(|word| {
            let Some(at) = word.find('@') else {
                return word.to_string();
            };
            let domain: String = word[at + 1..]
                .trim_end_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase();
            let has_local = word[..at].chars().any(|c| c.is_alphanumeric());
            if !has_local
                || domain.is_empty()
                || domain == suffix
                || domain.ends_with(&format!(".{suffix}"))
            {
                word.to_string()
            } else {
                "[address]".to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarizes_multipart_with_attachment() {
        let msg = b"From: a@ct.test\r\nSubject: Invoice for x@real.test\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nYour invoice is attached. Write to bob@real.test or 0123456789abcdef0123456789abcdef@ct.test.\r\n\
--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"invoice.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n";
        let mut aliases = AliasMap::new();
        aliases.insert("x@real.test", "alias@ct.test");
        let s = summarize(msg, &aliases, "ct.test");
        assert_eq!(s.subject, "Invoice for alias@ct.test");
        assert_eq!(
            s.first_words,
            "Your invoice is attached. Write to [address] or 0123456789abcdef0123456789abcdef@ct.test."
        );
        assert_eq!(s.attachment_names, vec!["invoice.pdf"]);
    }

    #[test]
    fn control_characters_are_dropped() {
        let msg = b"Subject: a\x00b\r\n\r\nx\x07y\r\n";
        let s = summarize(msg, &AliasMap::new(), "ct.test");
        assert!(
            !s.subject.contains('\0') && !s.first_words.contains('\x07'),
            "{s:?}"
        );
    }

    #[test]
    fn long_bodies_are_cut() {
        let body = "word ".repeat(100);
        let msg = format!("Subject: s\r\n\r\n{body}\r\n");
        let s = summarize(msg.as_bytes(), &AliasMap::new(), "ct.test");
        assert!(s.first_words.ends_with('…'));
        assert_eq!(s.first_words.split(' ').count(), FIRST_WORDS);
    }
}
