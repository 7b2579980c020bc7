//! Reading a delivered message's header fields the ways their readers do,
//! to look for a real address in any of them (tests/headers.rs).

use mail_parser::parsers::MessageStream;
use mail_parser::HeaderValue;

/// Header fields of a message as (lowercase name, raw bytes with folding).
pub fn fields(message: &[u8]) -> Vec<(String, String)> {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |p| p + 2);
    let head = String::from_utf8_lossy(&message[..end]);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.split_inclusive("\r\n") {
        if line.starts_with([' ', '\t']) {
            out.last_mut()
                .expect("a field before a fold")
                .1
                .push_str(line);
        } else if let Some((name, _)) = line.split_once(':') {
            out.push((name.trim().to_ascii_lowercase(), line.to_string()));
        }
    }
    out
}

/// `text` with `(comments)` taken out.
fn without_comments(text: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()),
        ) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every way the test reads `field` for `real`: unfolded, decoded by
/// mail-parser (as its field and as unstructured text), percent-decoded,
/// with comments and white space around `@` taken out, and
/// as VERP writes an address into another (`local=domain`).
pub fn shows(field: &str, value: &HeaderValue<'_>, real: &str) -> bool {
    let (local, domain) = real.split_once('@').unwrap();
    let unfolded = field.replace("\r\n", "").to_lowercase();
    let squeezed: String = without_comments(&unfolded)
        .replace(" @ ", "@")
        .replace(" @", "@")
        .replace("@ ", "@")
        .replace('"', "");
    let decoded = match value {
        HeaderValue::Text(t) => t.to_lowercase(),
        HeaderValue::TextList(l) => l.join(" ").to_lowercase(),
        HeaderValue::Address(a) => a
            .iter()
            .map(|a| format!("{:?} {:?}", a.name, a.address))
            .collect::<String>()
            .to_lowercase(),
        HeaderValue::ContentType(ct) => format!("{:?}", ct.attributes).to_lowercase(),
        _ => String::new(),
    };
    let value_at = field.find(':').map_or(0, |c| c + 1);
    let words = match MessageStream::new(&field.as_bytes()[value_at..]).parse_unstructured() {
        HeaderValue::Text(t) => t.to_lowercase(),
        _ => String::new(),
    };
    [
        unfolded.clone(),
        squeezed,
        decoded,
        words,
        percent_decoded(&unfolded),
    ]
    .iter()
    .any(|t| t.contains(real) || t.contains(&format!("{local}={domain}")))
}
