//! Writing address fields back: display names as atoms, quoted strings or
//! RFC 2047 encoded words, and folding at address boundaries (RFC 5322).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// RFC 5322 recommends lines of at most 78 characters.
const FOLD_AT: usize = 78;
/// 45 bytes encode to 60 base64 characters: with `=?UTF-8?B?` and `?=`
/// the encoded word stays within RFC 2047's 75.
const WORD_BYTES: usize = 45;

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

/// A display name as a phrase that any reader decodes back to `name`.
pub fn render_phrase(name: &str) -> String {
    if name.chars().all(|c| is_atext(c) || c == ' ')
        && !name.starts_with(' ')
        && !name.ends_with(' ')
    {
        return name.to_string();
    }
    if name.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) {
        let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
        return format!("\"{escaped}\"");
    }
    encoded_words(name)
}

/// `text` as UTF-8 base64 encoded words of at most 75 characters each.
pub(super) fn encoded_words(text: &str) -> String {
    let mut words = Vec::new();
    let mut chunk_start = 0;
    let mut chunk_len = 0;
    for (i, c) in text.char_indices() {
        if chunk_len + c.len_utf8() > WORD_BYTES {
            words.push(&text[chunk_start..i]);
            chunk_start = i;
            chunk_len = 0;
        }
        chunk_len += c.len_utf8();
    }
    words.push(&text[chunk_start..]);
    words
        .iter()
        .map(|w| format!("=?UTF-8?B?{}?=", STANDARD.encode(w.as_bytes())))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn render_mailbox(name: Option<&str>, address: &str) -> String {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => format!("{} <{address}>", render_phrase(n)),
        None => address.to_string(),
    }
}

/// `Name: a, b, c` with CRLF, folded before an item when the line would pass 78.
pub fn fold_addresses(name: &str, items: &[String]) -> String {
    let mut out = format!("{name}:");
    let mut line_len = out.len();
    for (i, item) in items.iter().enumerate() {
        let sep = if i + 1 < items.len() { "," } else { "" };
        if i > 0 && line_len + 1 + item.len() + sep.len() > FOLD_AT {
            out.push_str("\r\n\t");
            line_len = 1;
        } else {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(item);
        out.push_str(sep);
        line_len += item.len() + sep.len();
    }
    out.push_str("\r\n");
    out
}

/// An unstructured field (`Name: text` with CRLF) whose text any reader
/// decodes back to `text`: as it is when it is printable ASCII with no
/// encoded-word start in it, else as UTF-8 encoded words; folded at white
/// space before a line would pass 78.
pub fn unstructured(name: &str, text: &str) -> String {
    let plain = text.chars().all(|c| c == ' ' || c.is_ascii_graphic()) && !text.contains("=?");
    let words: Vec<String> = if plain {
        text.split(' ')
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    } else {
        encoded_words(text).split(' ').map(str::to_string).collect()
    };
    let mut out = format!("{name}:");
    let mut line_len = out.len();
    for word in words {
        if line_len + 1 + word.len() > FOLD_AT && line_len > name.len() + 1 {
            out.push_str("\r\n\t");
            line_len = 1;
        } else {
            out.push(' ');
            line_len += 1;
        }
        line_len += word.len();
        out.push_str(&word);
    }
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases() {
        assert_eq!(render_phrase("John Doe"), "John Doe");
        assert_eq!(render_phrase("Doe, John"), "\"Doe, John\"");
        assert_eq!(render_phrase("a \"b\" \\c"), "\"a \\\"b\\\" \\\\c\"");
        assert_eq!(render_phrase("João"), "=?UTF-8?B?Sm/Do28=?=");
    }

    #[test]
    fn long_non_ascii_names_split_into_valid_words() {
        let name = "ç".repeat(40); // 80 bytes
        let words = render_phrase(&name);
        for w in words.split(' ') {
            assert!(w.len() <= 75, "{w}");
            assert!(w.starts_with("=?UTF-8?B?") && w.ends_with("?="));
        }
        assert_eq!(words.split(' ').count(), 2);
    }

    #[test]
    fn unstructured_text_reads_back() {
        assert_eq!(
            unstructured("Subject", "Order  shipped"),
            "Subject: Order shipped\r\n"
        );
        let field = unstructured("Subject", "Pedido enviado — João");
        assert!(
            field.starts_with("Subject: =?UTF-8?B?") && field.is_ascii(),
            "{field}"
        );
        let long = unstructured("X-Note", &"word ".repeat(40));
        assert!(long.lines().all(|l| l.len() <= 78), "{long}");
    }

    #[test]
    fn folds_between_addresses() {
        let items: Vec<String> = (0..4)
            .map(|i| format!("Person {i} <{}@ct.test>", "a".repeat(32)))
            .collect();
        let field = fold_addresses("To", &items);
        assert!(field.lines().all(|l| l.len() <= 78), "{field}");
        assert!(field.ends_with("\r\n"));
        assert_eq!(field.matches("\r\n\t").count(), 3);
    }
}
