//! How one reading sees the text around an `@` in raw header bytes: the
//! local part before it and the domain after it, strictly (quotes, `\`
//! and `%XX` escapes undone) or loosely (RFC 5322's obsolete white space,
//! folds and comments around the `@` and the dots). `finder` decides which
//! of what these read is a known address.

use super::alias_map::Known;
use super::finder::{Context, REACH, SEPARATORS};

/// A local part as one reading sees it: its text (lowercase, quotes and
/// escapes undone) and, for each byte of the text, where it stands in raw.
pub(super) struct Local {
    pub(super) text: Vec<u8>,
    pub(super) at: Vec<usize>,
    pub(super) start: usize,
}

impl Local {
    /// Where in raw a hit for `local` starts: the whole local part, or a
    /// tail of it after a separator (in a file name, any punctuation).
    pub(super) fn start_of(&self, local: &[u8], context: Context) -> Option<usize> {
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
    pub(super) fn encodes(&self, k: &Known) -> bool {
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
pub(super) struct Domain {
    pub(super) text: Vec<u8>,
    pub(super) end: usize,
    pub(super) labels: Vec<(usize, usize)>,
}

impl Domain {
    /// Where in raw a hit for `domain` ends.
    pub(super) fn end_of(&self, domain: &[u8], context: Context) -> Option<usize> {
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

pub(super) fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80
}

pub(super) fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b >= 0x80
}

pub(super) fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The byte a `%XX` escape ending just before `p` stands for.
pub(super) fn percent_before(raw: &[u8], p: usize) -> Option<u8> {
    (p >= 3 && raw[p - 3] == b'%').then_some(())?;
    Some(hex(raw[p - 2])? * 16 + hex(raw[p - 1])?)
}

/// The byte a `%XX` escape starting at `p` stands for.
pub fn percent_at(raw: &[u8], p: usize) -> Option<u8> {
    (raw.get(p) == Some(&b'%')).then_some(())?;
    Some(hex(*raw.get(p + 1)?)? * 16 + hex(*raw.get(p + 2)?)?)
}

/// Whether the quote at `q` is escaped (an odd run of `\` before it).
pub(super) fn escaped(raw: &[u8], q: usize) -> bool {
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
pub(super) fn skip_cfws_back(raw: &[u8], mut p: usize, floor: usize) -> usize {
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
pub(super) fn skip_cfws(raw: &[u8], mut p: usize, ceiling: usize) -> usize {
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
pub(super) fn read_local(raw: &[u8], end: usize, loose: bool) -> Local {
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
pub(super) fn read_word_back(
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
pub(super) fn read_domain(raw: &[u8], start: usize, loose: bool) -> Domain {
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
