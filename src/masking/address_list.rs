//! RFC 5322 address lists (From, To, Reply-To, Resent-*, …), read the way a
//! lenient reader reads them: obsolete syntax (white space and comments
//! between every token, quoted words in local parts, routes, empty list
//! elements), missing commas between addr-specs, and recovery from broken
//! pieces. An unterminated quoted string or comment loses its opening
//! character and the rest is read on; so `"ACME <sac@acme-store.com>` is
//! the mailbox `ACME <sac@acme-store.com>`, as a reader that gives up on the
//! quote sees it, rather than a name with no address.
//!
//! Only structure is read here; which addresses are known is the masker's
//! business.

use std::borrow::Cow;

use mail_parser::parsers::MessageStream;

use super::address_tokens::{tokenize, Tok, Token};

/// `local@domain`, the local part with its quotes and escapes undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrSpec {
    /// The local part, quotes and escapes undone.
    pub local: String,
    /// The domain.
    pub domain: String,
}

impl AddrSpec {
    /// As written in a field: the local part quoted when it is not a
    /// dot-atom.
    pub fn render(&self) -> String {
        if is_dot_atom(&self.local) {
            format!("{}@{}", self.local, self.domain)
        } else {
            let escaped = self.local.replace('\\', "\\\\").replace('"', "\\\"");
            format!("\"{escaped}\"@{}", self.domain)
        }
    }

    /// As compared with participants' addresses (see `alias_map::canonical`).
    pub fn plain(&self) -> String {
        format!("{}@{}", self.local, self.domain)
    }
}

/// A dot-atom of atext, UTF-8 allowed (RFC 6532).
fn is_dot_atom(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| {
                    !c.is_ascii() || c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
                })
        })
}

/// One mailbox: a display name, an address, or both.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mailbox {
    /// The display name, encoded words decoded; for an address written
    /// without one, the text of a comment after it (`sac@x (ACME)`).
    pub name: Option<String>,
    /// Its address; none when the mailbox has only a name.
    pub address: Option<AddrSpec>,
}

/// An entry of an address list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// One mailbox.
    Mailbox(Mailbox),
    /// A named group of mailboxes (`team: a@x, b@y;`).
    Group {
        /// The group's name.
        name: String,
        /// The group's mailboxes.
        members: Vec<Mailbox>,
    },
}

impl Item {
    /// The mailboxes it holds: itself, or the group's members.
    pub fn mailboxes(&self) -> &[Mailbox] {
        match self {
            Item::Mailbox(m) => std::slice::from_ref(m),
            Item::Group { members, .. } => members,
        }
    }
}

/// Every mailbox of `items`, those in groups included, in order.
pub fn mailboxes(items: &[Item]) -> impl Iterator<Item = &Mailbox> {
    items.iter().flat_map(Item::mailboxes)
}

/// An address list's value (after the colon), read into items.
pub fn parse(value: &[u8]) -> Vec<Item> {
    let mut p = Parser {
        toks: tokenize(value),
        i: 0,
    };
    let mut items = Vec::new();
    while let Some(t) = p.peek() {
        match t {
            Tok::Special(b',' | b';' | b'>' | b':' | b'.' | b']') | Tok::Comment(_) => p.i += 1,
            _ => {
                let before = p.i;
                items.push(p.item());
                if p.i == before {
                    p.i += 1;
                }
            }
        }
    }
    items.retain(|i| match i {
        Item::Mailbox(m) => m.address.is_some() || m.name.is_some(),
        Item::Group { .. } => true,
    });
    items
}

struct Parser<'a> {
    toks: Vec<Token<'a>>,
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok<'_>> {
        self.toks.get(self.i).map(|t| &t.tok)
    }

    fn is_special(&self, b: u8) -> bool {
        self.peek() == Some(&Tok::Special(b))
    }

    /// A `:` comes before any `<`, `@`, `,` or `;`: a group starts here.
    fn group_ahead(&self) -> bool {
        for t in &self.toks[self.i..] {
            match t.tok {
                Tok::Special(b':') => return true,
                Tok::Special(b'<' | b'@' | b',' | b';') => return false,
                _ => {}
            }
        }
        false
    }

    fn item(&mut self) -> Item {
        if !self.group_ahead() {
            return Item::Mailbox(self.mailbox(false));
        }
        let start = self.i;
        while !self.is_special(b':') {
            self.i += 1;
        }
        let name = phrase(&self.toks[start..self.i]);
        self.i += 1;
        let mut members = Vec::new();
        while let Some(t) = self.peek() {
            match t {
                Tok::Special(b';') => {
                    self.i += 1;
                    break;
                }
                Tok::Special(b',' | b':' | b'>' | b'.' | b']') | Tok::Comment(_) => self.i += 1,
                _ => {
                    let before = self.i;
                    let m = self.mailbox(true);
                    if m.address.is_some() || m.name.is_some() {
                        members.push(m);
                    }
                    if self.i == before {
                        self.i += 1;
                    }
                }
            }
        }
        Item::Group { name, members }
    }

    /// One mailbox from here: a phrase and an angle address, an addr-spec,
    /// or a phrase alone.
    fn mailbox(&mut self, in_group: bool) -> Mailbox {
        let start = self.i;
        let mut comments = Vec::new();
        while let Some(t) = self.peek() {
            match t {
                Tok::Special(b',') => break,
                Tok::Special(b';') if in_group => break,
                Tok::Special(b'<') => {
                    let name_toks = self.toks[start..self.i].to_vec();
                    self.i += 1;
                    let address = self.angle();
                    comments.extend(self.comments());
                    let name = Some(phrase(&name_toks))
                        .filter(|n| !n.is_empty())
                        .or_else(|| joined(&comments));
                    return Mailbox { name, address };
                }
                Tok::Special(b'@') => {
                    let before: Vec<Token<'_>> = self.toks[start..self.i].to_vec();
                    let (name_toks, local) = split_local(&before);
                    self.i += 1;
                    let domain = self.domain();
                    comments.extend(self.comments());
                    let name = Some(phrase(name_toks))
                        .filter(|n| !n.is_empty())
                        .or_else(|| joined(&comments));
                    let address = (!local.is_empty() && !domain.is_empty())
                        .then_some(AddrSpec { local, domain });
                    return Mailbox { name, address };
                }
                Tok::Comment(c) => {
                    comments.push(c.to_string());
                    self.i += 1;
                }
                Tok::Special(b':' | b'>' | b']') => self.i += 1,
                _ => self.i += 1,
            }
        }
        let name = Some(phrase(&self.toks[start..self.i])).filter(|n| !n.is_empty());
        Mailbox {
            name,
            address: None,
        }
    }

    /// Inside `<…>`: an optional route (`@a,@b:`), then an addr-spec. Reads
    /// to the `>`, or, when there is none, to the next `,`.
    fn angle(&mut self) -> Option<AddrSpec> {
        let close = self.toks[self.i..]
            .iter()
            .position(|t| matches!(t.tok, Tok::Special(b'>' | b'<')))
            .filter(|&p| self.toks[self.i + p].tok == Tok::Special(b'>'));
        let end = match close {
            Some(p) => self.i + p,
            None => self.toks[self.i..]
                .iter()
                .position(|t| t.tok == Tok::Special(b','))
                .map_or(self.toks.len(), |p| self.i + p),
        };
        let mut inner: Vec<Token<'_>> = self.toks[self.i..end]
            .iter()
            .filter(|t| !matches!(t.tok, Tok::Comment(_)))
            .cloned()
            .collect();
        self.i = if close.is_some() { end + 1 } else { end };
        // obs-route: `@a,@b:` before the address.
        if inner.first().map(|t| &t.tok) == Some(&Tok::Special(b'@')) {
            if let Some(colon) = inner.iter().rposition(|t| t.tok == Tok::Special(b':')) {
                inner.drain(..=colon);
            }
        }
        let at = inner.iter().rposition(|t| t.tok == Tok::Special(b'@'))?;
        let (_, local) = split_local(&inner[..at]);
        let domain = domain_of(&inner[at + 1..]);
        (!local.is_empty() && !domain.is_empty()).then_some(AddrSpec { local, domain })
    }

    /// A domain from here: atoms joined by dots, or a domain literal. The
    /// first may stand apart from the `@`; the rest may not.
    fn domain(&mut self) -> String {
        while let Some(Tok::Comment(_)) = self.peek() {
            self.i += 1;
        }
        let start = self.i;
        let mut end = self.i;
        let mut expect_word = true;
        while let Some(t) = self.toks.get(end) {
            if end > start && t.spaced {
                break;
            }
            match (&t.tok, expect_word) {
                (Tok::Word { quoted: false, .. } | Tok::Literal(_), true) => expect_word = false,
                (Tok::Special(b'.'), false) => expect_word = true,
                _ => break,
            }
            end += 1;
        }
        let domain = domain_of(&self.toks[start..end]);
        self.i = end;
        domain
    }

    fn comments(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(Tok::Comment(c)) = self.peek() {
            out.push(c.to_string());
            self.i += 1;
        }
        out
    }
}

fn joined(comments: &[String]) -> Option<String> {
    let text = comments.join(" ");
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The domain in `toks`: its words and dots, lowercase kept as written.
fn domain_of(toks: &[Token<'_>]) -> String {
    let mut out = String::new();
    for t in toks {
        match &t.tok {
            Tok::Word {
                text,
                quoted: false,
            }
            | Tok::Literal(text) => out.push_str(text),
            Tok::Special(b'.') => out.push('.'),
            Tok::Comment(_) => {}
            _ => break,
        }
    }
    out.trim_matches('.').to_string()
}

/// `toks` (what stands before an `@`) split into the display name's tokens
/// and the local part: its last words joined by dots. The word next to the
/// `@` may stand apart from it (`sac @ x`); the words and dots of the local
/// part itself may not, so `Mr. sac@x` is the name `Mr.` and `sac@x`.
fn split_local<'t, 'a>(toks: &'t [Token<'a>]) -> (&'t [Token<'a>], String) {
    let mut end = toks.len();
    while end > 0 && matches!(toks[end - 1].tok, Tok::Comment(_)) {
        end -= 1;
    }
    let mut start = end;
    let mut expect_word = true;
    while start > 0 {
        let joined = start == end || !toks[start].spaced;
        match (&toks[start - 1].tok, expect_word) {
            (Tok::Word { .. }, true) if joined => expect_word = false,
            (Tok::Special(b'.'), false) if joined => expect_word = true,
            _ => break,
        }
        start -= 1;
    }
    // A local part never starts with a dot.
    while start < end && toks[start].tok == Tok::Special(b'.') {
        start += 1;
    }
    let mut local = String::new();
    for t in &toks[start..end] {
        match &t.tok {
            Tok::Word { text, .. } => local.push_str(text),
            Tok::Special(b'.') => local.push('.'),
            _ => {}
        }
    }
    (&toks[..start], local)
}

/// A display name from its tokens: words joined by single spaces, encoded
/// words decoded (and joined without the space between two of them).
fn phrase(toks: &[Token<'_>]) -> String {
    let mut out = String::new();
    let mut last_encoded = false;
    for t in toks {
        let (text, encoded) = match &t.tok {
            Tok::Word {
                text,
                quoted: false,
            } => match decode_word(text) {
                Some(decoded) => (Cow::Owned(decoded), true),
                None => (text.clone(), false),
            },
            Tok::Word { text, quoted: true } => (text.clone(), false),
            Tok::Special(b) => (Cow::Owned((*b as char).to_string()), false),
            Tok::Literal(text) => (text.clone(), false),
            Tok::Comment(_) => continue,
        };
        if t.spaced && !out.is_empty() && !(encoded && last_encoded) {
            out.push(' ');
        }
        out.push_str(&text);
        last_encoded = encoded;
    }
    out.trim().to_string()
}

/// An atom that is one RFC 2047 encoded word, decoded as mail-parser does.
fn decode_word(atom: &str) -> Option<String> {
    if !(atom.starts_with("=?") && atom.ends_with("?=") && atom.len() > 4) {
        return None;
    }
    let mut s = MessageStream::new(&atom.as_bytes()[1..]);
    s.decode_rfc2047().filter(|_| s.offset() + 1 == atom.len())
}

#[cfg(test)]
#[path = "address_list_tests.rs"]
mod tests;
