//! The participants of one order as masking sees them: each real address,
//! in the form every spelling of it is compared against, and its alias.

use std::collections::HashMap;

/// Real addresses of an order's participants to their aliases. Keys are
/// canonical (see [`canonical`]), so `"JohnDoe"@Example.COM` and
/// `johndoe@example.com` are one participant.
#[derive(Debug, Clone, Default)]
pub struct AliasMap {
    by_real: HashMap<String, String>,
    /// The same entries split at the `@`, for the spelling finder.
    parts: Vec<Known>,
}

/// One known address, split, lowercase.
#[derive(Debug, Clone)]
pub(super) struct Known {
    pub local: String,
    pub domain: String,
    pub alias: String,
}

impl AliasMap {
    /// A map with no address.
    pub fn new() -> Self {
        Self::default()
    }

    /// Map `real` to `alias`; a second alias for the same address replaces
    /// the first. An address that has no `@` is ignored: no reader would
    /// take it for one.
    pub fn insert(&mut self, real: &str, alias: &str) {
        let key = canonical(real);
        let Some((local, domain)) = key.rsplit_once('@') else {
            return;
        };
        if local.is_empty() || domain.is_empty() {
            return;
        }
        let known = Known {
            local: local.to_string(),
            domain: domain.to_string(),
            alias: alias.to_string(),
        };
        match self
            .parts
            .iter_mut()
            .find(|k| k.local == known.local && k.domain == known.domain)
        {
            Some(k) => k.alias = alias.to_string(),
            None => self.parts.push(known),
        }
        self.by_real.insert(key, alias.to_string());
    }

    /// The alias of `address`, written any way [`canonical`] undoes.
    pub fn get(&self, address: &str) -> Option<&str> {
        if let Some((local, domain)) = plain_parts(address) {
            return self
                .parts
                .iter()
                .find(|k| {
                    k.local.eq_ignore_ascii_case(local) && k.domain.eq_ignore_ascii_case(domain)
                })
                .map(|k| k.alias.as_str());
        }
        self.by_real.get(&canonical(address)).map(String::as_str)
    }

    /// Whether `address` (any case) is a participant's.
    pub fn contains(&self, address: &str) -> bool {
        self.get(address).is_some()
    }

    /// True when no address is known.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// How many addresses are known.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// (canonical real address, alias) of every participant.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_real.iter().map(|(r, a)| (r.as_str(), a.as_str()))
    }

    pub(super) fn known(&self) -> &[Known] {
        &self.parts
    }

    /// Whether `value` may spell a known address at all. Every spelling a
    /// reader decodes holds the first label of the address's domain as it
    /// is, unless escapes (`%XX`, `\`) or encoded words (`=?…`, `?Q?…?=`)
    /// stand in it; so a value with none of those and none of the labels
    /// (the common case of a field naming no participant) needs no reading.
    pub(super) fn may_be_in(&self, value: &[u8]) -> bool {
        if self.parts.is_empty() || memchr::memchr3(b'@', b'%', b'?', value).is_none() {
            return false;
        }
        if memchr::memchr2(b'%', b'\\', value).is_some() {
            return true;
        }
        let words = memchr::memchr(b'?', value).is_some()
            && (memchr::memmem::find(value, b"=?").is_some()
                || contains_ignoring_case(value, b"?q?")
                || contains_ignoring_case(value, b"?b?"));
        // Quotes, comments and line breaks can split a word that a reader
        // (mail-parser) puts back together: `gmai"""\r""l.com`. The labels
        // are looked for with them taken out.
        let squeezed: Vec<u8>;
        let value = if memchr::memchr3(b'"', b'\r', b'\n', value).is_some()
            || memchr::memchr2(b'(', b'\t', value).is_some()
        {
            squeezed = value
                .iter()
                .copied()
                .filter(|b| !matches!(b, b'"' | b'\r' | b'\n' | b' ' | b'\t' | b'(' | b')'))
                .collect();
            &squeezed[..]
        } else {
            value
        };
        words
            || self.parts.iter().any(|k| {
                let label = k.domain.split('.').next().unwrap_or(&k.domain);
                contains_ignoring_case(value, label.as_bytes())
            })
    }
}

impl<const N: usize> From<[(String, String); N]> for AliasMap {
    fn from(entries: [(String, String); N]) -> Self {
        let mut map = Self::new();
        for (real, alias) in entries {
            map.insert(&real, &alias);
        }
        map
    }
}

/// Whether `needle` (lowercase ASCII) stands in `hay`, ignoring ASCII case
/// and any `"` between its bytes: readers join the pieces of a quoted
/// phrase (`gmai""l.com` reads `gmail.com`).
fn contains_ignoring_case(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    memchr::memchr2_iter(first, first.to_ascii_uppercase(), hay).any(|i| {
        let mut wanted = rest.iter();
        let mut next = wanted.next();
        for &b in &hay[i + 1..] {
            let Some(&w) = next else { break };
            if b == b'"' {
                continue;
            }
            if !b.eq_ignore_ascii_case(&w) {
                return false;
            }
            next = wanted.next();
        }
        next.is_none()
    })
}

/// The form addresses are compared in: lowercase, white space and comments
/// around the `@` and dots dropped, and a quoted local part unquoted
/// (`"qa1" @ Example.NET` is `qa1@example.net`). Local parts are compared
/// without case although RFC 5321 lets them have it: a mailbox that differs
/// from a participant's only in case is, for masking, that participant.
pub fn canonical(address: &str) -> String {
    if plain_parts(address).is_some() {
        return address.to_lowercase();
    }
    let trimmed = address.trim();
    let Some(at) = trimmed.rfind('@') else {
        return trimmed.to_lowercase();
    };
    let (local, domain) = (&trimmed[..at], &trimmed[at + 1..]);
    let local = unquote(local.trim());
    let domain: String = domain
        .split('.')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(".");
    let local: String = local
        .split('.')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(".");
    format!("{}@{}", local.to_lowercase(), domain.to_lowercase())
}

/// `local` and `domain` of an address that [`canonical`] would only
/// lowercase: no quotes, no white space, no dot next to the `@`.
fn plain_parts(address: &str) -> Option<(&str, &str)> {
    let (local, domain) = address.rsplit_once('@')?;
    let plain = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && !s.ends_with('.')
            && !s.bytes().any(|b| b == b'"' || b.is_ascii_whitespace())
    };
    (plain(local) && plain(domain) && !domain.contains("..")).then_some((local, domain))
}

/// The text of a quoted local part (`"a\"b"` is `a"b`); anything else as it is.
fn unquote(local: &str) -> String {
    let Some(inner) = local
        .strip_prefix('"')
        .and_then(|l| l.strip_suffix('"'))
        .filter(|_| local.len() >= 2)
    else {
        return local.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_address_are_one_key() {
        for spelling in [
            "qa1@example.net",
            "QA1@Example.NET",
            "\"qa1\"@example.net",
            " qa1 @ example.net ",
            "\"q\\a1\"@example.net",
            "qa1@example . net",
        ] {
            assert_eq!(canonical(spelling), "qa1@example.net", "{spelling}");
        }
        assert_eq!(canonical("\"a b\"@x.test"), "a b@x.test");
    }

    #[test]
    fn only_values_that_could_spell_a_known_address_need_reading() {
        let mut m = AliasMap::new();
        m.insert("sac@acme-store.com", "a@ct.test");
        for value in [
            "sac@ACME-store.com",
            "x%40y",
            "=?utf-8?b?eA==?=",
            "a\\@b",
            "?Q?x?=",
            "sac@ac\"\"me-store.com",
        ] {
            assert!(m.may_be_in(value.as_bytes()), "{value}");
        }
        // A domain split by quotes and a bare CR, as a fuzzed Reply-To had it.
        assert!(m.may_be_in(b"re.com para sac@acme-sto\"\"\"\r\"\"re.com"));
        for value in ["x@y.test", "no at sign", "<m.1@ct.test>"] {
            assert!(!m.may_be_in(value.as_bytes()), "{value}");
        }
    }

    #[test]
    fn lookups_take_any_spelling_and_later_aliases_replace_earlier_ones() {
        let mut m = AliasMap::new();
        m.insert("JohnDoe@Example.COM", "a@ct.test");
        m.insert("johndoe@example.com", "b@ct.test");
        m.insert("no-at-sign", "c@ct.test");
        assert_eq!(m.len(), 1);
        assert_eq!(m.get("\"johndoe\"@EXAMPLE.com"), Some("b@ct.test"));
        assert!(!m.contains("john@example.com"));
    }
}
