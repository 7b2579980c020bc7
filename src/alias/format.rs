//! The alias formats of docs/REFERENCE.md ("Alias formats"): pure functions of the HMAC key and
//! the participant, no storage. Every alias carries a tag, so an address can be
//! checked without reading the database.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{AliasKey, MaskMode, Role};

const HARD_ID_LEN: usize = 20;
const HARD_TAG_LEN: usize = 12;
const SOFT_ORDER_LEN: usize = 8;
const SOFT_TAG_LEN: usize = 5;
/// RFC 1035 limits that decide whether a soft alias is a usable address.
const MAX_LABEL: usize = 63;
const MAX_DOMAIN: usize = 253;

/// `H(x…)` of the reference's alias formats: lowercase hex of HMAC-SHA256 over the fields joined by NUL.
pub(super) fn h(key: &AliasKey, fields: &[&str]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes())
        .expect("HMAC accepts keys of any length");
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            mac.update(&[0]);
        }
        mac.update(field.as_bytes());
    }
    hex::encode(mac.finalize().into_bytes())
}

/// The hard alias: `id tag @ alias_domain`, 32 lowercase hex.
pub fn hard_alias(
    key: &AliasKey,
    domain: &str,
    store: &str,
    order: &str,
    role: Role,
    email: &str,
) -> String {
    let lower = email.to_lowercase();
    let id = &h(key, &["ct-hard-v1", store, order, role.as_str(), &lower])[..HARD_ID_LEN];
    let tag = &h(key, &["ct-hard-tag-v1", id])[..HARD_TAG_LEN];
    format!("{id}{tag}@{domain}")
}

/// The soft alias, or `None` when the result would not be a valid plain
/// address (the caller then falls back to hard).
pub fn soft_alias(
    key: &AliasKey,
    domain: &str,
    store: &str,
    order: &str,
    email: &str,
) -> Option<String> {
    let (local, real_domain) = email.rsplit_once('@')?;
    if !is_dot_atom(local) || !is_ascii_domain(real_domain) {
        return None;
    }
    let real = format!("{local}@{}", real_domain.to_ascii_lowercase());
    let a = &h(key, &["ct-soft-v1", store, order])[..SOFT_ORDER_LEN];
    let t = &h(key, &["ct-soft-tag-v1", &real.to_lowercase(), a])[..SOFT_TAG_LEN];
    let alias = format!("{real}-{a}{t}.{domain}");
    let alias_domain = alias.rsplit_once('@')?.1;
    let labels_ok = alias_domain
        .split('.')
        .all(|l| !l.is_empty() && l.len() <= MAX_LABEL);
    (labels_ok && alias_domain.len() <= MAX_DOMAIN).then_some(alias)
}

/// The alias of a participant in the asked mode, falling back to hard as
/// the reference requires. Returns the alias and the mode it was made in.
pub fn make_alias(
    key: &AliasKey,
    domain: &str,
    store: &str,
    order: &str,
    role: Role,
    email: &str,
    mode: MaskMode,
) -> (String, MaskMode) {
    if mode == MaskMode::Soft {
        if let Some(alias) = soft_alias(key, domain, store, order, email) {
            return (alias, MaskMode::Soft);
        }
    }
    (
        hard_alias(key, domain, store, order, role, email),
        MaskMode::Hard,
    )
}

/// What an address under the alias domain claims to be, once its tag verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagCheck {
    /// Not under alias_domain at all: relaying.
    Foreign,
    /// Under alias_domain but not a well-formed alias, or its tag is wrong.
    Invalid,
    /// A well-formed alias whose tag verifies; look it up by this key.
    Valid {
        /// The alias's lookup key (lowercase).
        key: String,
        /// The mode it was made in.
        mode: MaskMode,
    },
    /// A bounce address whose tag verifies and that is still valid: it
    /// names this delivery.
    Bounce {
        /// The delivery the bounce address names.
        delivery_id: String,
    },
}

/// Verify an address's tag without touching the database.
pub fn check_tag(key: &AliasKey, alias_domain: &str, address: &str) -> TagCheck {
    let lower = address.to_lowercase();
    let Some((local, domain)) = lower.rsplit_once('@') else {
        return TagCheck::Foreign;
    };
    let suffix = format!(".{alias_domain}");
    if domain == alias_domain {
        return check_hard(key, local, &lower);
    }
    let Some(label_part) = domain.strip_suffix(&suffix) else {
        return TagCheck::Foreign;
    };
    check_soft(key, local, label_part, &lower)
}

fn check_hard(key: &AliasKey, local: &str, lower: &str) -> TagCheck {
    let is_hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    if local.len() != HARD_ID_LEN + HARD_TAG_LEN || !is_hex(local) {
        return TagCheck::Invalid;
    }
    let (id, tag) = local.split_at(HARD_ID_LEN);
    if constant_time_eq(&h(key, &["ct-hard-tag-v1", id])[..HARD_TAG_LEN], tag) {
        TagCheck::Valid {
            key: lower.to_string(),
            mode: MaskMode::Hard,
        }
    } else {
        TagCheck::Invalid
    }
}

/// `label_part` is the real domain, `-`, then `a` and `t` (13 hex).
fn check_soft(key: &AliasKey, local: &str, label_part: &str, lower: &str) -> TagCheck {
    let Some((real_domain, at)) = label_part.rsplit_once('-') else {
        return TagCheck::Invalid;
    };
    if at.len() != SOFT_ORDER_LEN + SOFT_TAG_LEN
        || !at.bytes().all(|b| b.is_ascii_hexdigit())
        || real_domain.is_empty()
    {
        return TagCheck::Invalid;
    }
    let (a, t) = at.split_at(SOFT_ORDER_LEN);
    let real = format!("{local}@{real_domain}");
    if constant_time_eq(&h(key, &["ct-soft-tag-v1", &real, a])[..SOFT_TAG_LEN], t) {
        TagCheck::Valid {
            key: lower.to_string(),
            mode: MaskMode::Soft,
        }
    } else {
        TagCheck::Invalid
    }
}

/// Tags and tokens are secrets of a kind: compare without an early exit.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// RFC 5322 atext besides letters and digits.
pub(super) const ATEXT_SPECIALS: &[u8] = b"!#$%&'*+-/=?^_`{|}~";

/// RFC 5322 dot-atom, ASCII only.
pub fn is_dot_atom(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || ATEXT_SPECIALS.contains(&b))
        })
}

/// Labels of ASCII letters, digits and inner hyphens, 1 to 63 each.
pub fn is_ascii_domain(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AliasKey {
        AliasKey::new((0u8..32).collect()).unwrap()
    }

    /// The published vectors of docs/REFERENCE.md ("Alias formats").
    const VECTORS: &[(&str, &str, Role, &str, &str, &str)] = &[
        (
            "acme",
            "1234567890123-01",
            Role::Customer,
            "JohnDoe@Example.COM",
            "f44789d54cb7909fb48a75629fbe7cfa@ct.test",
            "JohnDoe@example.com-4e818166b1cd0.ct.test",
        ),
        (
            "acme",
            "1234567890123-01",
            Role::Store,
            "sac@acme-store.com",
            "c2db2cdaaba1ba2f6171492a5c6accf5@ct.test",
            "sac@acme-store.com-4e81816628b36.ct.test",
        ),
        (
            "shop2",
            "v502556llux-01",
            Role::Customer,
            "maria.silva@gmail.com",
            "cc87ac175ba182f72d9bb03db900a941@ct.test",
            "maria.silva@gmail.com-a227fbbab7cad.ct.test",
        ),
    ];

    #[test]
    fn design_test_vectors() {
        for (store, order, role, email, hard, soft) in VECTORS {
            assert_eq!(
                hard_alias(&key(), "ct.test", store, order, *role, email),
                *hard
            );
            assert_eq!(
                soft_alias(&key(), "ct.test", store, order, email).as_deref(),
                Some(*soft)
            );
        }
    }

    #[test]
    fn vectors_verify_in_any_case() {
        for (_, _, _, _, hard, soft) in VECTORS {
            for addr in [
                hard.to_string(),
                hard.to_uppercase(),
                soft.to_string(),
                soft.to_uppercase(),
            ] {
                assert!(
                    matches!(check_tag(&key(), "ct.test", &addr), TagCheck::Valid { .. }),
                    "{addr}"
                );
            }
        }
    }

    fn check(address: &str) -> TagCheck {
        check_tag(&key(), "ct.test", address)
    }

    #[test]
    fn a_changed_character_fails_the_tag() {
        for address in [
            "f44789d54cb7909fb48a75629fbe7cfb@ct.test",
            "JaneDoe@example.com-4e818166b1cd0.ct.test",
            "postmaster@ct.test",
            "x@sub.ct.test",
        ] {
            assert_eq!(check(address), TagCheck::Invalid, "{address}");
        }
    }

    #[test]
    fn other_domains_are_foreign() {
        for address in ["a@example.com", "a@evilct.test", "no-at-sign"] {
            assert_eq!(check(address), TagCheck::Foreign, "{address}");
        }
    }

    #[test]
    fn soft_falls_back_to_hard_when_not_a_plain_address() {
        let quoted = "\"john doe\"@example.com";
        // The real domain's last label grows by 14 octets in the soft alias.
        let long_label = format!("a@example.{}", "x".repeat(50));
        let unicode = "joão@example.com";
        for email in [quoted, long_label.as_str(), unicode] {
            let (alias, mode) = make_alias(
                &key(),
                "ct.test",
                "acme",
                "1",
                Role::Customer,
                email,
                MaskMode::Soft,
            );
            assert_eq!(mode, MaskMode::Hard, "{email}");
            assert!(matches!(
                check_tag(&key(), "ct.test", &alias),
                TagCheck::Valid { .. }
            ));
        }
    }

    #[test]
    fn hard_ignores_email_case_but_not_role() {
        let a = hard_alias(&key(), "ct.test", "s", "o", Role::Customer, "A@B.C");
        let b = hard_alias(&key(), "ct.test", "s", "o", Role::Customer, "a@b.c");
        let c = hard_alias(&key(), "ct.test", "s", "o", Role::Contact, "a@b.c");
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
