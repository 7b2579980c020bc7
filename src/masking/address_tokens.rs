//! The tokens of an RFC 5322 address list: atoms, quoted strings (their
//! escapes undone), comments, domain literals and specials, each knowing
//! whether white space or a comment stood before it. Lenient: an
//! unterminated quoted string or comment loses its opening character and
//! the rest is read on (see `address_list`).

use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok<'a> {
    /// An atom (escapes undone) or, `quoted`, a quoted string's text.
    Word {
        text: Cow<'a, str>,
        quoted: bool,
    },
    Comment(Cow<'a, str>),
    /// `[…]`
    Literal(Cow<'a, str>),
    Special(u8),
}

#[derive(Debug, Clone)]
pub(super) struct Token<'a> {
    pub(super) tok: Tok<'a>,
    /// White space or a comment stands before it.
    pub(super) spaced: bool,
}

const SPECIALS: &[u8] = b"<>,:;@.]";

/// Bytes of a token as text, borrowed when they are UTF-8 as they stand.
fn text(bytes: Cow<'_, [u8]>) -> Cow<'_, str> {
    match bytes {
        Cow::Borrowed(b) => String::from_utf8_lossy(b),
        Cow::Owned(b) => Cow::Owned(String::from_utf8_lossy(&b).into_owned()),
    }
}

pub(super) fn tokenize(value: &[u8]) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut spaced = false;
    let mut i = 0;
    while i < value.len() {
        let b = value[i];
        match b {
            b if b.is_ascii_whitespace() || b.is_ascii_control() => {
                spaced = true;
                i += 1;
            }
            b'(' => {
                match comment_end(value, i) {
                    Some(end) => {
                        out.push(Token {
                            tok: Tok::Comment(text(unescape(&value[i + 1..end - 1]))),
                            spaced,
                        });
                        i = end;
                    }
                    None => i += 1, // unterminated: the `(` goes
                }
                spaced = true;
            }
            b')' => {
                spaced = true;
                i += 1;
            }
            b'"' => match quote_end(value, i) {
                Some(end) => {
                    out.push(Token {
                        tok: Tok::Word {
                            text: text(unescape(&value[i + 1..end - 1])),
                            quoted: true,
                        },
                        spaced,
                    });
                    spaced = false;
                    i = end;
                }
                None => i += 1, // unterminated: the `"` goes
            },
            b'[' if value[i..].contains(&b']') => {
                let end = i + memchr::memchr(b']', &value[i..]).unwrap_or(0) + 1;
                out.push(Token {
                    tok: Tok::Literal(text(Cow::Borrowed(&value[i..end]))),
                    spaced,
                });
                spaced = false;
                i = end;
            }
            b if SPECIALS.contains(&b) => {
                out.push(Token {
                    tok: Tok::Special(b),
                    spaced,
                });
                spaced = false;
                i += 1;
            }
            _ => {
                let start = i;
                let mut escapes = false;
                while i < value.len() {
                    let c = value[i];
                    if c == b'\\' && i + 1 < value.len() && !value[i + 1].is_ascii_control() {
                        escapes = true;
                        i += 2;
                    } else if c.is_ascii_whitespace()
                        || c.is_ascii_control()
                        || b"()\"".contains(&c)
                        || SPECIALS.contains(&c)
                        || (c == b'[' && value[i..].contains(&b']'))
                    {
                        break;
                    } else {
                        i += 1;
                    }
                }
                let atom = &value[start..i];
                let atom = if escapes {
                    unescape(atom)
                } else {
                    Cow::Borrowed(atom)
                };
                out.push(Token {
                    tok: Tok::Word {
                        text: text(atom),
                        quoted: false,
                    },
                    spaced,
                });
                spaced = false;
            }
        }
    }
    out
}

/// The end (past the `)`) of the comment opening at `start`, nested
/// comments and escapes taken into account.
fn comment_end(value: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while i < value.len() {
        match value[i] {
            b'\\' => i += 1,
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The end (past the closing `"`) of the quoted string opening at `start`.
fn quote_end(value: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < value.len() {
        match value[i] {
            b'\\' => i += 1,
            b'"' => return Some(i + 1),
            _ => {}
        }
        i += 1;
    }
    None
}

fn unescape(bytes: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr(b'\\', bytes).is_none() {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 1 < bytes.len() {
            i += 1;
        }
        out.push(bytes[i]);
        i += 1;
    }
    Cow::Owned(out)
}
