//! Aliases: who they stand for, how they are made and checked, how long they live.
//!
//! `format` holds the normative formats of docs/REFERENCE.md; `Aliaser` binds
//! them to the configured key, domain and lifetime.

mod bounce;
mod format;
mod ttl;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use bounce::BOUNCE_VALIDITY_DAYS;
pub use format::{check_tag, constant_time_eq, is_ascii_domain, is_dot_atom, make_alias, TagCheck};
pub use ttl::Ttl;

/// The HMAC key; its bytes are never printed (Debug is redacted).
#[derive(Clone)]
pub struct AliasKey(Vec<u8>);

/// The reference asks for 32 random bytes or more.
pub const MIN_KEY_LEN: usize = 32;

impl AliasKey {
    /// A key of at least 32 bytes.
    pub fn new(bytes: Vec<u8>) -> Result<Self, AliasError> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(AliasError::ShortKey(bytes.len()));
        }
        Ok(Self(bytes))
    }

    /// A key from configuration: `hex:…` or plain text of 32+ bytes.
    pub fn parse(text: &str) -> Result<Self, AliasError> {
        let bytes = match text.strip_prefix("hex:") {
            Some(h) => hex::decode(h.trim()).map_err(|_| AliasError::BadKeyHex)?,
            None => text.as_bytes().to_vec(),
        };
        Self::new(bytes)
    }

    /// The key's bytes (never logged).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for AliasKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AliasKey(<redacted>)")
    }
}

/// Why an alias, a key or a participant was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AliasError {
    /// The key is shorter than 32 bytes (its length).
    #[error("alias.hmac_key is {0} bytes; at least 32 are required")]
    ShortKey(usize),
    /// A `hex:` key that is not hexadecimal.
    #[error("alias.hmac_key starts with hex: but is not valid hex")]
    BadKeyHex,
    /// Not a plain `local@domain` address.
    #[error("`{0}` is not an e-mail address (expected local@domain)")]
    BadEmail(String),
    /// An address under the alias domain cannot be a participant.
    #[error("an address under the alias domain cannot be a participant")]
    AliasAsParticipant,
    /// A store or order id with characters other than letters, digits, `.`, `_` and `-` (the id, what it is).
    #[error("`{0}` is not a valid {1} (letters, digits, `.`, `_`, `-`; 1 to 128 characters)")]
    BadId(String, &'static str),
    /// A store id with capital letters: store ids are compared exactly, so
    /// `ACME` would silently be another store than `acme`.
    #[error("store id `{0}` must be lowercase (store ids are compared exactly; use `{1}`)")]
    UppercaseStore(String, String),
    /// Not `customer`, `store` or `contact`.
    #[error("unknown role `{0}` (customer, store or contact)")]
    BadRole(String),
    /// Not `hard` or `soft`.
    #[error("unknown mask mode `{0}` (hard or soft)")]
    BadMode(String),
}

/// The form of an alias: unreadable (`hard`) or showing the real address (`soft`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MaskMode {
    /// 32 hex characters that say nothing about the participant.
    Hard,
    /// The real address made part of a domain under the alias domain.
    Soft,
}

impl MaskMode {
    /// The mode's word, as stored and as the API shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            MaskMode::Hard => "hard",
            MaskMode::Soft => "soft",
        }
    }
}

impl FromStr for MaskMode {
    type Err = AliasError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hard" => Ok(MaskMode::Hard),
            "soft" => Ok(MaskMode::Soft),
            other => Err(AliasError::BadMode(other.to_string())),
        }
    }
}

/// What a participant is to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The buyer.
    Customer,
    /// The shop's own address.
    Store,
    /// Anyone else who writes (a carrier, an ERP), added when their mail arrives.
    Contact,
}

impl Role {
    /// The role's word, as stored and as the API shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Store => "store",
            Role::Contact => "contact",
        }
    }
}

impl FromStr for Role {
    type Err = AliasError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "customer" => Ok(Role::Customer),
            "store" => Ok(Role::Store),
            "contact" => Ok(Role::Contact),
            other => Err(AliasError::BadRole(other.to_string())),
        }
    }
}

/// One alias row: a participant of one order under one mask mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// The alias as made (soft aliases keep the local part's case).
    pub alias: String,
    /// The store the order belongs to.
    pub store: String,
    /// The order id within the store.
    pub order: String,
    /// What the participant is to the order.
    pub role: Role,
    /// The real address. Never logged, never shown outside delivery.
    pub email: String,
    /// The form the alias was made in.
    pub mode: MaskMode,
    /// When the alias was made.
    pub created_at: DateTime<Utc>,
    /// When the alias stops working (`alias.ttl`, or an order event).
    pub expires_at: DateTime<Utc>,
    /// Disabled by hand before it expired.
    pub disabled: bool,
    /// Blocked as a sender for its order: its mail is refused.
    pub blocked: bool,
    /// Its mailbox refused mail as unknown or disabled often enough: mail
    /// to the alias is refused until the address changes.
    pub undeliverable: bool,
}

impl Participant {
    /// Lookup key: aliases are case-insensitive.
    pub fn key(&self) -> String {
        self.alias.to_lowercase()
    }

    /// Both belong to the same order of the same store.
    pub fn same_order(&self, other: &Participant) -> bool {
        self.store == other.store && self.order == other.order
    }

    /// Whether mail to the alias is taken at `now`: not disabled, not expired.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        !self.disabled && now < self.expires_at
    }
}

/// Binds the alias formats to this relay's key, domain and alias lifetime.
#[derive(Debug, Clone)]
pub struct Aliaser {
    key: AliasKey,
    /// Earlier keys, still accepted when checking (key rotation).
    retired: Vec<AliasKey>,
    domain: String,
    ttl: Ttl,
}

impl Aliaser {
    /// An alias maker for `domain` with `key`, aliases living `ttl`.
    pub fn new(key: AliasKey, domain: &str, ttl: Ttl) -> Self {
        Self {
            key,
            retired: Vec::new(),
            domain: domain.to_ascii_lowercase(),
            ttl,
        }
    }

    /// Also accept aliases and bounce addresses made with `keys`.
    pub fn with_retired(mut self, keys: Vec<AliasKey>) -> Self {
        self.retired = keys;
        self
    }

    /// The current key first, then the retired ones.
    fn keys(&self) -> impl Iterator<Item = &AliasKey> {
        std::iter::once(&self.key).chain(&self.retired)
    }

    /// The alias domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// True for the alias domain and any name under it.
    pub fn is_alias_domain(&self, domain: &str) -> bool {
        let d = domain.to_ascii_lowercase();
        d == self.domain || d.ends_with(&format!(".{}", self.domain))
    }

    /// What `address` is under the alias domain, from its tag alone (no database read).
    pub fn check(&self, address: &str) -> TagCheck {
        self.check_at(address, Utc::now())
    }

    /// `check` as of `now` (bounce addresses expire).
    pub fn check_at(&self, address: &str, now: DateTime<Utc>) -> TagCheck {
        if let Some((local, domain)) = address.rsplit_once('@') {
            let local = local.to_ascii_lowercase();
            if domain.eq_ignore_ascii_case(&self.domain) && bounce::looks_like_bounce(&local) {
                return self
                    .keys()
                    .find_map(|key| bounce::check_bounce(key, &local, now))
                    .map_or(TagCheck::Invalid, |delivery_id| TagCheck::Bounce {
                        delivery_id,
                    });
            }
        }
        for key in self.keys() {
            match check_tag(key, &self.domain, address) {
                TagCheck::Invalid => continue,
                decided => return decided,
            }
        }
        TagCheck::Invalid
    }

    /// `H(label, fields…)` with the current key, for what else the relay
    /// signs (console sessions). `label` names the use and keeps it apart
    /// from the alias formats, whose labels are the reference's.
    pub fn sign(&self, label: &str, fields: &[&str]) -> String {
        let mut all = Vec::with_capacity(fields.len() + 1);
        all.push(label);
        all.extend_from_slice(fields);
        format::h(&self.key, &all)
    }

    /// The envelope sender for delivery `delivery_id`: a signed bounce address.
    pub fn bounce_address(&self, delivery_id: &str, now: DateTime<Utc>) -> String {
        bounce::bounce_address(&self.key, &self.domain, delivery_id, now)
    }

    /// The participant row for (store, order, role, email) in `mode`, created now.
    /// Validates its inputs; the same inputs always give the same alias.
    pub fn participant(
        &self,
        store: &str,
        order: &str,
        role: Role,
        email: &str,
        mode: MaskMode,
        now: DateTime<Utc>,
    ) -> Result<Participant, AliasError> {
        validate_store_id(store)?;
        validate_id(order, "order id")?;
        let email = email.trim();
        let (_, domain) = split_address(email)?;
        if self.is_alias_domain(domain) {
            return Err(AliasError::AliasAsParticipant);
        }
        let (alias, mode) = make_alias(&self.key, &self.domain, store, order, role, email, mode);
        Ok(Participant {
            alias,
            store: store.to_string(),
            order: order.to_string(),
            role,
            email: email.to_string(),
            mode,
            created_at: now,
            expires_at: self.ttl.after(now),
            disabled: false,
            blocked: false,
            undeliverable: false,
        })
    }
}

/// Split `local@domain`, refusing what cannot be a mailbox.
pub fn split_address(email: &str) -> Result<(&str, &str), AliasError> {
    let bad = || AliasError::BadEmail(email.to_string());
    let (local, domain) = email.rsplit_once('@').ok_or_else(bad)?;
    // U+FFFD stands for bytes that were not UTF-8: no mailbox has it.
    let forbidden = |c: char| {
        c.is_whitespace()
            || c.is_control()
            || "<>,;".contains(c)
            || c == char::REPLACEMENT_CHARACTER
    };
    // A domain mail can be sent to (RFC 5321): labels of letters, digits
    // and hyphens (any script's, for internationalized names; `_`, which
    // some DNS names carry), or an address literal. Not `example.net=2E?=`,
    // which a lenient reading of a broken header can take for an address.
    let literal = domain.starts_with('[') && domain.ends_with(']');
    let hostname = domain.split('.').all(|label| {
        label
            .chars()
            .all(|c| c.is_alphanumeric() || "-_".contains(c))
    });
    // A local part as RFC 5322 writes one: a dot-atom of atext (any
    // script's letters and digits for SMTPUTF8), dots where real mailboxes
    // have them, or a quoted string. Not `x.t[een`, `a(b` or `a\b`, which a
    // lenient reading of a broken header can take for one.
    let atext = |c: char| {
        c.is_alphanumeric()
            || c == '.'
            || (c.is_ascii() && format::ATEXT_SPECIALS.contains(&(c as u8)))
    };
    let quoted = local.len() >= 2
        && local.starts_with('"')
        && local.ends_with('"')
        && !local[1..local.len() - 1].replace("\\\"", "").contains('"');
    let local_ok = quoted || (local.chars().all(atext) && local.chars().any(|c| c != '.'));
    if local.is_empty()
        || !local_ok
        || domain.is_empty()
        || local.len() > 64
        || domain.len() > 255
        || email.contains(forbidden)
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || !(literal || hostname)
    {
        return Err(bad());
    }
    Ok((local, domain))
}

/// Store and order ids appear in aliases' HMAC input and in URLs: keep them plain.
pub fn validate_id(id: &str, what: &'static str) -> Result<(), AliasError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(AliasError::BadId(id.to_string(), what))
    }
}

/// A store id: as `validate_id`, and lowercase, so that `ACME` is refused
/// rather than becoming a store apart from `acme`.
pub fn validate_store_id(store: &str) -> Result<(), AliasError> {
    validate_id(store, "store id")?;
    if store.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(AliasError::UppercaseStore(
            store.to_string(),
            store.to_ascii_lowercase(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_ids_are_lowercase() {
        assert!(validate_store_id("acme-store_2.br").is_ok());
        let e = validate_store_id("ACME").unwrap_err();
        assert_eq!(e, AliasError::UppercaseStore("ACME".into(), "acme".into()));
        assert!(e.to_string().contains("use `acme`"), "{e}");
        assert!(matches!(
            validate_store_id("a b"),
            Err(AliasError::BadId(..))
        ));
        assert!(
            validate_id("Order-ABC", "order id").is_ok(),
            "order ids keep their case"
        );
    }

    fn aliaser() -> Aliaser {
        let key = AliasKey::new((0u8..32).collect()).unwrap();
        Aliaser::new(key, "ct.test", Ttl::Months(2))
    }

    #[test]
    fn short_keys_are_refused() {
        assert_eq!(
            AliasKey::parse("short").unwrap_err(),
            AliasError::ShortKey(5)
        );
        assert!(AliasKey::parse(&format!("hex:{}", "00".repeat(32))).is_ok());
        assert_eq!(
            AliasKey::parse("hex:zz").unwrap_err(),
            AliasError::BadKeyHex
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = AliasKey::parse("a-very-secret-key-of-32-bytes-or-more!").unwrap();
        assert!(!format!("{key:?}").contains("secret"));
    }

    #[test]
    fn participant_expires_two_calendar_months_later() {
        let now = "2026-12-31T10:00:00Z".parse().unwrap();
        let p = aliaser()
            .participant("acme", "1", Role::Customer, "a@b.com", MaskMode::Hard, now)
            .unwrap();
        assert_eq!(p.expires_at.to_rfc3339(), "2027-02-28T10:00:00+00:00");
        assert!(p.is_active(now));
        assert!(!p.is_active(p.expires_at));
    }

    #[test]
    fn bad_participants_are_refused() {
        let now = Utc::now();
        let a = aliaser();
        let err = |store, email| {
            a.participant(store, "1", Role::Customer, email, MaskMode::Hard, now)
                .unwrap_err()
        };
        assert!(matches!(
            err("acme", "not-an-address"),
            AliasError::BadEmail(_)
        ));
        assert!(matches!(err("acme", "a b@c.com"), AliasError::BadEmail(_)));
        assert!(matches!(
            err("acme", "sac@ac\u{fffd}-store.com"),
            AliasError::BadEmail(_)
        ));
        // A domain mail cannot be sent to: what a lenient reading of a
        // broken header can take for one (found by the header_mask fuzzer).
        for domain in ["example.netple=2enet?=", "exa(mple).net", "ex\"am.net"] {
            let email = format!("ju@{domain}");
            assert!(
                matches!(split_address(&email), Err(AliasError::BadEmail(_))),
                "{domain}"
            );
        }
        // Nor a local part no RFC 5322 mailbox has (found by the header_mask
        // fuzzer in a broken Cc: `Return-Path:x.fuzz.t[een@example.net`).
        for local in [
            "x.fuzz.t[een",
            "a(b",
            "a\\b",
            "a]b",
            "\"a\"b\"",
            "a\"b",
            "...",
        ] {
            let email = format!("{local}@example.net");
            assert!(
                matches!(split_address(&email), Err(AliasError::BadEmail(_))),
                "{local}"
            );
        }
        for ok in [
            "first.last+tag@example.net",
            "o'brien@example.ie",
            "a..b@docomo.ne.jp",
            "\"john..doe\"@example.net",
            "joão@exemplo.com.br",
            "x!#$%&*/=?^_`{|}~-@example.net",
        ] {
            assert!(split_address(ok).is_ok(), "{ok}");
        }
        // Hostnames of any script, `_` and address literals stay.
        for ok in [
            "ju@exämple.net",
            "ju@sub_x.example.net",
            "ju@[192.0.2.1]",
            "ju@a-b.example",
        ] {
            assert!(split_address(ok).is_ok(), "{ok}");
        }
        assert!(matches!(err("ac me", "a@c.com"), AliasError::BadId(..)));
        assert_eq!(
            err("acme", "f44789d54cb7909fb48a75629fbe7cfa@ct.test"),
            AliasError::AliasAsParticipant
        );
        assert_eq!(err("acme", "x@sub.CT.test"), AliasError::AliasAsParticipant);
    }
}
