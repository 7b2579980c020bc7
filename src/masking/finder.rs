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
use super::spelling::{read_domain, read_local};

/// How far a reading goes from its `@`: a local part is at most 64 octets
/// and a domain 255, plus room for quotes, escapes and comments.
pub(super) const REACH: usize = 512;

/// Bytes that end a word in free text and may stand just before a known
/// local part: atext a real local part rarely starts with.
pub(super) const SEPARATORS: &[u8] = b"'`=/|{}~!#$%&*^?";

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

#[cfg(test)]
#[path = "finder_tests.rs"]
mod tests;
