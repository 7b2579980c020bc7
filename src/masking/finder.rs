//! Where a known address stands in raw header bytes, however it is spelled.
//!
//! Readers differ, so each `@` (or `%40`) is read two ways: strictly, as
//! the address a modern parser sees (`sac@acme-store.com`, with quoted
//! words, `\` escapes and `%XX` escapes undone), and loosely, with RFC 5322's
//! obsolete syntax (white space, folds and comments around the `@` and the
//! dots: `sac (x) @ acme-store . com`). A known address found by either
//! reading is a hit. The local part must be the participant's whole local
//! part, or end it after a character that separates words in free text
//! (`user='sac@…`, `=?utf-8?q?sac@…`); the domain must be the whole domain.
//! So `xsac@acme-store.com`, `john.sac@…` and `sac@acme-store.com.br`,
//! which are other mailboxes, are not hits, and neither is a soft alias,
//! which holds its real address followed by `-`.
//! An address encoded in another's local part, as VERP and SRS write them
//! (`bounces+sac=acme-store.com@esp.example`,
//! `SRS0=x=yy=acme-store.com=sac@fwd.example`), is a hit covering the
//! whole address.
//!
//! Each reading looks at most `REACH` bytes either side of its `@`.

use super::alias_map::{AliasMap, Known};

/// How far a reading goes from its `@`: a local part is at most 64 octets
/// and a domain 255, plus room for quotes, escapes and comments.
const REACH: usize = 512;

/// Bytes that end a word in free text and may stand just before a known
/// local part: atext a real local part rarely starts with.
const SEPARATORS: &[u8] = b"'`=/|{}~!#$%&*^?";

/// One known address found in raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Hit {
    pub start: usize,
    pub end: usize,
    /// The alias to write there, `@` written `%40` when the address was.
    pub replacement: String,
}

/// Where the text stands, which says where an address in it may end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Context {
    /// Anywhere in a field: the local part starts after a separator and no
    /// more labels follow the domain (`x-sac@…` and `sac@acme-store.com.br`
    /// are other mailboxes).
    Field,
    /// A file name: the address may stand between any punctuation and the
    /// name's extension (`coleta-sac@acme-store.com.pdf`).
    FileName,
}

/// Every known address in `raw`, in order, not overlapping, read as in
/// `context`.
pub(super) fn find_in(raw: &[u8], aliases: &AliasMap, context: Context) -> Vec<Hit> {
    let mut hits: Vec<Hit> = Vec::new();
    if aliases.is_empty() {
        return hits;
    }
    for (at, after) in anchors(raw) {
        if hits.last().is_some_and(|h| at < h.end) {
            continue;
        }
        let percent = after - at == 3;
        if let Some((start, end, known)) = match_at(raw, at, after, aliases.known(), context) {
            // A hit read backwards over the one before it (an address
            // encoded into the local part after another): one span.
            if let Some(last) = hits.last_mut().filter(|h| start < h.end) {
                last.end = last.end.max(end);
                continue;
            }
            let replacement = if percent {
                known.alias.replacen('@', "%40", 1)
            } else {
                known.alias.clone()
            };
            hits.push(Hit {
                start,
                end,
                replacement,
            });
        }
    }
    hits
}

/// Whether `raw` holds a known address anywhere.
pub(super) fn holds_known(raw: &[u8], aliases: &AliasMap) -> bool {
    !aliases.is_empty()
        && anchors(raw)
            .any(|(at, after)| match_at(raw, at, after, aliases.known(), Context::Field).is_some())
}

/// `raw` with every hit replaced.
pub(super) fn replace(raw: &[u8], aliases: &AliasMap) -> Vec<u8> {
    replace_in(raw, aliases, Context::Field)
}

/// `replace`, read as in `context`.
pub(super) fn replace_in(raw: &[u8], aliases: &AliasMap, context: Context) -> Vec<u8> {
    let hits = find_in(raw, aliases, context);
    if hits.is_empty() {
        return raw.to_vec();
    }
    let mut out = Vec::with_capacity(raw.len() + 32 * hits.len());
    let mut copied = 0;
    for h in hits {
        out.extend_from_slice(&raw[copied..h.start]);
        out.extend_from_slice(h.replacement.as_bytes());
        copied = h.end;
    }
    out.extend_from_slice(&raw[copied..]);
    out
}

/// (start, end) of each `@` and each `%40`.
fn anchors(raw: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    memchr::memchr2_iter(b'@', b'%', raw).filter_map(|i| match raw[i] {
        b'@' => Some((i, i + 1)),
        _ if raw.get(i + 1..i + 3) == Some(b"40") => Some((i, i + 3)),
        _ => None,
    })
}

fn match_at<'k>(
    raw: &[u8],
    at: usize,
    after: usize,
    known: &'k [Known],
    context: Context,
) -> Option<(usize, usize, &'k Known)> {
    // The strict readings first; the loose ones only where white space or a
    // comment stands next to the `@` or a dot, as they alone differ there.
    let strict = read_domain(raw, after, false);
    let loose = spaced_after(raw, after, strict.end).then(|| read_domain(raw, after, true));
    let rights: Vec<(&Known, usize)> = known
        .iter()
        .filter_map(|k| {
            let domain = k.domain.as_bytes();
            strict
                .end_of(domain, context)
                .or_else(|| loose.as_ref()?.end_of(domain, context))
                .map(|end| (k, end))
        })
        .collect();
    let left = read_local(raw, at, false);
    if !rights.is_empty() {
        let loose_left = spaced_before(raw, at, left.start).then(|| read_local(raw, at, true));
        for &(k, end) in &rights {
            let local = k.local.as_bytes();
            let start = left
                .start_of(local, context)
                .or_else(|| loose_left.as_ref()?.start_of(local, context));
            if let Some(start) = start {
                return Some((start, end, k));
            }
        }
    }
    // An address inside another's local part (VERP, SRS): replace it whole.
    if !left.text.contains(&b'=') || strict.text.is_empty() {
        return None;
    }
    known
        .iter()
        .find(|k| left.encodes(k))
        .map(|k| (left.start, strict.end, k))
}

/// Whether white space or a comment stands right after the `@` (at
/// `after`) or around the dot after the strict domain (ending at `end`).
fn spaced_after(raw: &[u8], after: usize, end: usize) -> bool {
    let spaced = |i: usize| matches!(raw.get(i), Some(b' ' | b'\t' | b'\r' | b'\n' | b'('));
    spaced(after) || spaced(end) || (raw.get(end) == Some(&b'.') && spaced(end + 1))
}

/// Whether white space or a comment stands right before the `@` (at `at`)
/// or around the dot before the strict local part (starting at `start`).
fn spaced_before(raw: &[u8], at: usize, start: usize) -> bool {
    let spaced = |i: usize| i > 0 && matches!(raw[i - 1], b' ' | b'\t' | b'\r' | b'\n' | b')');
    spaced(at) || spaced(start) || (start > 0 && raw[start - 1] == b'.' && spaced(start - 1))
}

/// A local part as one reading sees it: its text (lowercase, quotes and
/// escapes undone) and, for each byte of the text, where it stands in raw.
struct Local {
    text: Vec<u8>,
    at: Vec<usize>,
    start: usize,
}

impl Local {
    /// Where in raw a hit for `local` starts: the whole local part, or a
    /// tail of it after a separator (in a file name, any punctuation).
    fn start_of(&self, local: &[u8], context: Context) -> Option<usize> {
        if local.is_empty() || !self.text.ends_with(local) {
            return None;
        }
        let j = self.text.len() - local.len();
        let before = self.text.get(j.wrapping_sub(1)).copied();
        match (before, context) {
            (None, _) => Some(self.start),
            (Some(b), Context::Field) => SEPARATORS.contains(&b).then(|| self.at[j]),
            (Some(b), Context::FileName) => {
                (!b.is_ascii_alphanumeric() && b < 0x80).then(|| self.at[j])
            }
        }
    }

    /// Whether `k` is written inside this local part as `local=domain`
    /// (VERP) or `domain=local` (SRS), between word boundaries.
    fn encodes(&self, k: &Known) -> bool {
        let bounded = |needle: &[u8]| {
            let t = &self.text;
            (0..t.len().saturating_sub(needle.len() - 1)).any(|i| {
                t[i..].starts_with(needle)
                    && (i == 0 || b"+-=._".contains(&t[i - 1]))
                    && t.get(i + needle.len()).is_none_or(|b| b"+-=._".contains(b))
            })
        };
        let verp = format!("{}={}", k.local, k.domain);
        let srs = format!("{}={}", k.domain, k.local);
        bounded(verp.as_bytes()) || bounded(srs.as_bytes())
    }
}

/// A domain as one reading sees it: lowercase, where it ends in raw, and
/// (length of text, end in raw) after each of its labels.
struct Domain {
    text: Vec<u8>,
    end: usize,
    labels: Vec<(usize, usize)>,
}

impl Domain {
    /// Where in raw a hit for `domain` ends.
    fn end_of(&self, domain: &[u8], context: Context) -> Option<usize> {
        if self.text == domain {
            return Some(self.end);
        }
        match context {
            Context::Field => None,
            Context::FileName => self
                .labels
                .iter()
                .find(|&&(len, _)| self.text[..len] == *domain)
                .map(|&(_, end)| end),
        }
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80
}

fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b >= 0x80
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The byte a `%XX` escape ending just before `p` stands for.
fn percent_before(raw: &[u8], p: usize) -> Option<u8> {
    (p >= 3 && raw[p - 3] == b'%').then_some(())?;
    Some(hex(raw[p - 2])? * 16 + hex(raw[p - 1])?)
}

/// The byte a `%XX` escape starting at `p` stands for.
fn percent_at(raw: &[u8], p: usize) -> Option<u8> {
    (raw.get(p) == Some(&b'%')).then_some(())?;
    Some(hex(*raw.get(p + 1)?)? * 16 + hex(*raw.get(p + 2)?)?)
}

/// Whether the quote at `q` is escaped (an odd run of `\` before it).
fn escaped(raw: &[u8], q: usize) -> bool {
    raw[..q]
        .iter()
        .rev()
        .take(REACH)
        .take_while(|&&b| b == b'\\')
        .count()
        % 2
        == 1
}

/// Back over white space, folds and comments from `p`, within `floor`.
fn skip_cfws_back(raw: &[u8], mut p: usize, floor: usize) -> usize {
    loop {
        while p > floor && matches!(raw[p - 1], b' ' | b'\t' | b'\r' | b'\n') {
            p -= 1;
        }
        if p > floor && raw[p - 1] == b')' && !escaped(raw, p - 1) {
            let mut depth = 0usize;
            let mut q = p;
            let open = loop {
                if q == floor {
                    break None;
                }
                q -= 1;
                match raw[q] {
                    b')' if !escaped(raw, q) => depth += 1,
                    b'(' if !escaped(raw, q) => {
                        depth -= 1;
                        if depth == 0 {
                            break Some(q);
                        }
                    }
                    _ => {}
                }
            };
            match open {
                Some(o) => p = o,
                None => return p,
            }
        } else {
            return p;
        }
    }
}

/// On over white space, folds and comments from `p`, within `ceiling`.
fn skip_cfws(raw: &[u8], mut p: usize, ceiling: usize) -> usize {
    loop {
        while p < ceiling && matches!(raw[p], b' ' | b'\t' | b'\r' | b'\n') {
            p += 1;
        }
        if p < ceiling && raw[p] == b'(' {
            let mut depth = 0usize;
            let mut q = p;
            let close = loop {
                if q >= ceiling {
                    break None;
                }
                match raw[q] {
                    b'\\' => q += 1,
                    b'(' => depth += 1,
                    b')' => {
                        depth -= 1;
                        if depth == 0 {
                            break Some(q + 1);
                        }
                    }
                    _ => {}
                }
                q += 1;
            };
            match close {
                Some(c) => p = c.min(ceiling),
                None => return p,
            }
        } else {
            return p;
        }
    }
}

/// The local part ending at `end` (the `@`), read backwards.
fn read_local(raw: &[u8], end: usize, loose: bool) -> Local {
    let floor = end.saturating_sub(REACH);
    // Reversed text and positions, turned round at the end.
    let mut text = Vec::new();
    let mut at = Vec::new();
    let mut p = end;
    if loose {
        p = skip_cfws_back(raw, p, floor);
    } else if p > floor && raw[p - 1] == b'\\' {
        p -= 1; // `sac\@acme-store.com`
    }
    let mut start = p;
    loop {
        let before = text.len();
        p = read_word_back(raw, p, floor, &mut text, &mut at);
        if text.len() == before {
            break;
        }
        start = p;
        let q = if loose {
            skip_cfws_back(raw, p, floor)
        } else {
            p
        };
        let dot = if q > floor && raw[q - 1] == b'.' {
            Some(q - 1)
        } else {
            (percent_before(raw, q) == Some(b'.')).then(|| q - 3)
        };
        let Some(dot) = dot else { break };
        let r = if loose {
            skip_cfws_back(raw, dot, floor)
        } else {
            dot
        };
        if r == floor || !(is_word_byte(raw[r - 1]) || raw[r - 1] == b'"') {
            break;
        }
        text.push(b'.');
        at.push(dot);
        p = r;
    }
    text.reverse();
    at.reverse();
    Local { text, at, start }
}

/// One word (an atom or a quoted string) ending at `p`, pushed reversed.
fn read_word_back(
    raw: &[u8],
    mut p: usize,
    floor: usize,
    text: &mut Vec<u8>,
    at: &mut Vec<usize>,
) -> usize {
    if p > floor && raw[p - 1] == b'"' && !escaped(raw, p - 1) {
        let close = p - 1;
        let open = (floor..close)
            .rev()
            .find(|&q| raw[q] == b'"' && !escaped(raw, q));
        let Some(open) = open else { return p };
        let mut inner: Vec<(u8, usize)> = Vec::new();
        let mut q = open + 1;
        while q < close {
            if raw[q] == b'\\' && q + 1 < close {
                q += 1;
            }
            inner.push((raw[q].to_ascii_lowercase(), q));
            q += 1;
        }
        for (b, i) in inner.into_iter().rev() {
            text.push(b);
            at.push(i);
        }
        return open;
    }
    while p > floor {
        if let Some(b) = percent_before(raw, p).filter(|&b| is_word_byte(b)) {
            text.push(b.to_ascii_lowercase());
            at.push(p - 3);
            p -= 3;
        } else if is_word_byte(raw[p - 1]) {
            text.push(raw[p - 1].to_ascii_lowercase());
            at.push(p - 1);
            p -= 1;
        } else if p >= floor + 2 && raw[p - 2] == b'\\' && !matches!(raw[p - 1], b'\r' | b'\n') {
            text.push(raw[p - 1].to_ascii_lowercase());
            at.push(p - 2);
            p -= 2;
        } else {
            break;
        }
    }
    p
}

/// The domain starting at `start` (just after the `@`).
fn read_domain(raw: &[u8], start: usize, loose: bool) -> Domain {
    let ceiling = raw.len().min(start + REACH);
    let mut text = Vec::new();
    let mut p = if loose {
        skip_cfws(raw, start, ceiling)
    } else {
        start
    };
    let mut end = p;
    let mut labels = Vec::new();
    loop {
        let before = text.len();
        while p < ceiling {
            if let Some(b) = percent_at(raw, p).filter(|&b| is_label_byte(b)) {
                text.push(b.to_ascii_lowercase());
                p += 3;
            } else if is_label_byte(raw[p]) {
                text.push(raw[p].to_ascii_lowercase());
                p += 1;
            } else {
                break;
            }
        }
        if text.len() == before {
            if let Some(b'.') = text.last() {
                text.pop();
            }
            break;
        }
        end = p;
        labels.push((text.len(), end));
        let q = if loose { skip_cfws(raw, p, ceiling) } else { p };
        let after_dot = if q < ceiling && raw[q] == b'.' {
            q + 1
        } else if percent_at(raw, q) == Some(b'.') {
            q + 3
        } else {
            break;
        };
        let r = if loose {
            skip_cfws(raw, after_dot, ceiling)
        } else {
            after_dot
        };
        let continues =
            r < ceiling && (is_label_byte(raw[r]) || percent_at(raw, r).is_some_and(is_label_byte));
        if !continues {
            break;
        }
        text.push(b'.');
        p = r;
    }
    Domain { text, end, labels }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALIAS: &str = "c2db2cdaaba1ba2f6171492a5c6accf5@ct.test";

    fn map() -> AliasMap {
        AliasMap::from([("sac@acme-store.com".to_string(), ALIAS.to_string())])
    }

    fn replaced(raw: &str) -> String {
        String::from_utf8(replace(raw.as_bytes(), &map())).unwrap()
    }

    #[test]
    fn spellings_a_reader_still_recognises_are_hits() {
        for (raw, want) in [
            ("sac@acme-store.com", ALIAS.to_string()),
            ("SAC@Acme-Store.COM", ALIAS.to_string()),
            ("<\"sac\"@acme-store.com>", format!("<{ALIAS}>")),
            ("\"s\\ac\"@acme-store.com", ALIAS.to_string()),
            ("sac @ acme-store.com", ALIAS.to_string()),
            ("sac(comment) @\r\n acme-store . com", ALIAS.to_string()),
            ("sac\\@acme-store.com", ALIAS.to_string()),
            (
                "mailto:sac%40acme-store.com",
                format!("mailto:{}", ALIAS.replace('@', "%40")),
            ),
            (
                "utf-8''%73ac%40acme%2Dstore.com",
                format!("utf-8''{}", ALIAS.replace('@', "%40")),
            ),
            ("user='sac@acme-store.com'", format!("user='{ALIAS}'")),
            ("Mr. sac@acme-store.com. Next", format!("Mr. {ALIAS}. Next")),
            ("for <sac@acme-store.com>;", format!("for <{ALIAS}>;")),
        ] {
            assert_eq!(replaced(raw), want, "{raw}");
        }
    }

    #[test]
    fn addresses_encoded_in_another_are_replaced_whole() {
        assert_eq!(
            replaced("<bounces+sac=acme-store.com@esp.example>"),
            format!("<{ALIAS}>")
        );
        assert_eq!(
            replaced("SRS0=AbCd=XY=acme-store.com=sac@fwd.example"),
            ALIAS.to_string()
        );
    }

    #[test]
    fn file_names_may_go_on_after_the_domain() {
        for (name, want) in [
            ("sac@acme-store.com.pdf", format!("{ALIAS}.pdf")),
            (
                "coleta-sac@acme-store.com.pdf",
                format!("coleta-{ALIAS}.pdf"),
            ),
        ] {
            assert!(find_in(name.as_bytes(), &map(), Context::Field).is_empty());
            let got = replace_in(name.as_bytes(), &map(), Context::FileName);
            assert_eq!(String::from_utf8(got).unwrap(), want);
        }
        // Letters before it still make it another mailbox.
        let other = b"xsac@acme-store.com.pdf";
        assert_eq!(replace_in(other, &map(), Context::FileName), other);
    }

    /// Found by the header_mask fuzz target: the second address's local
    /// part, read backwards, ran into the first hit.
    #[test]
    fn hits_that_overlap_become_one() {
        let raw = "SRS0=ab=acme-store.com=sac@fwd.\u{95}+sac=acme-store.com@esp.example";
        assert_eq!(replaced(raw), ALIAS);
    }

    #[test]
    fn other_mailboxes_are_not_hits() {
        for raw in [
            "xsac@acme-store.com",
            "john.sac@acme-store.com",
            "sac@acme-store.com.br",
            "sac@xacme-store.com",
            "sac+tag@acme-store.com",
            "sac@acme-store.com-4e81816628b36.ct.test",
            "john sac\"@acme-store.com",
            "bounces+xsac=acme-store.com@esp.example",
            "@acme-store.com",
            "sac@",
        ] {
            assert_eq!(replaced(raw), raw, "{raw}");
        }
    }

    #[test]
    fn unbalanced_quotes_comments_and_long_runs_cost_little_and_do_not_panic() {
        for raw in [
            "\"@", "(@)", ")@(", "\\@", "%4", "%40", "\"\"@\"", "a.@.b", "..@..", "@@@@",
        ] {
            let _ = replaced(raw);
        }
        let long = format!("{}@{}", "a".repeat(10_000), "b.".repeat(10_000));
        assert_eq!(replaced(&long), long);
        let many = "(@".repeat(20_000);
        assert_eq!(replaced(&many), many);
    }
}
