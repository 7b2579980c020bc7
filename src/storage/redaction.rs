//! Finding one person in what the relay stored about others: their
//! address and aliases in free text (reply texts, refusals, the relay's
//! notices) and their aliases in a timeline entry's JSON, for erasure.

use std::collections::HashMap;

use super::rows::{from_json, json};
use super::{AliasRef, Result};

/// What replaces the person's address or alias in stored reply texts.
const REDACTED: &str = "[erased]";

/// The order's rows of the person, what replaces their aliases, and the
/// needles to look for in free text (the address and the old aliases).
pub(super) struct Person<'a> {
    pub(super) email: &'a str,
    pub(super) renamed: HashMap<String, String>,
    pub(super) needles: Vec<String>,
}

impl Person<'_> {
    pub(super) fn is_theirs(&self, alias: &str) -> bool {
        self.renamed.contains_key(&alias.to_lowercase())
    }

    pub(super) fn rename(&self, alias: &str) -> Option<&String> {
        self.renamed.get(&alias.to_lowercase())
    }

    pub(super) fn scrub(&self, text: &str) -> String {
        self.needles.iter().fold(text.to_string(), |t, n| {
            replace_ignoring_case(&t, n, REDACTED)
        })
    }

    pub(super) fn mentioned_in(&self, content: &[u8]) -> bool {
        let lower = content.to_ascii_lowercase();
        self.needles
            .iter()
            .any(|n| lower.windows(n.len()).any(|w| w == n.as_bytes()))
    }
}

/// Replace every occurrence of `needle` (lowercase ASCII) in `text`,
/// whatever its case.
fn replace_ignoring_case(text: &str, needle: &str, with: &str) -> String {
    if needle.is_empty() {
        return text.to_string();
    }
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(i) = lower[at..].find(needle) {
        out.push_str(&text[at..at + i]);
        out.push_str(with);
        at += i + needle.len();
    }
    out.push_str(&text[at..]);
    out
}

/// `refs` (one `AliasRef`, or a list when `list`) with the person's
/// aliases renamed; `None` when none of them is there.
pub(super) fn rename_refs(person: &Person<'_>, refs: &str, list: bool) -> Result<Option<String>> {
    let mut parsed: Vec<AliasRef> = match list {
        true => from_json(refs)?,
        false => vec![from_json(refs)?],
    };
    let mut changed = false;
    for r in &mut parsed {
        if let Some(new) = person.rename(&r.email_alias) {
            r.email_alias = new.clone();
            changed = true;
        }
    }
    Ok(changed.then(|| match list {
        true => json(&parsed),
        false => json(&parsed[0]),
    }))
}

#[cfg(test)]
mod tests {
    use super::replace_ignoring_case;

    #[test]
    fn replacing_ignores_case_and_keeps_the_rest() {
        assert_eq!(
            replace_ignoring_case(
                "550 <Maria@Example.com>: no; maria@example.COM",
                "maria@example.com",
                "[x]"
            ),
            "550 <[x]>: no; [x]"
        );
        assert_eq!(
            replace_ignoring_case("nothing here", "a@b", "[x]"),
            "nothing here"
        );
    }
}
