//! Signed bounce addresses, the envelope sender of every delivery (like SRS):
//! `b-<delivery id>-<day>-<tag>@alias_domain`, where `day` counts days since
//! the Unix epoch and `tag = H("ct-bounce-v1", delivery id, day)[0..16]`.
//! A bounce names the delivery it is about; a forged or stale one has no
//! valid tag and is refused at RCPT without reading the database.

use chrono::{DateTime, Utc};

use super::format::h;
use super::{constant_time_eq, AliasKey};

const PREFIX: &str = "b-";
const TAG_LEN: usize = 16;
/// ULIDs: 26 characters of Crockford base32.
const ID_LEN: usize = 26;
/// How long a bounce address is accepted: deliveries retry for days, and
/// the receiving side may queue as long again before it bounces.
pub const BOUNCE_VALIDITY_DAYS: i64 = 30;

fn day(now: DateTime<Utc>) -> i64 {
    now.timestamp().div_euclid(86_400)
}

/// The bounce address of delivery `delivery_id`, made at `now`.
pub fn bounce_address(
    key: &AliasKey,
    domain: &str,
    delivery_id: &str,
    now: DateTime<Utc>,
) -> String {
    let id = delivery_id.to_ascii_lowercase();
    let day = day(now).to_string();
    let tag = &h(key, &["ct-bounce-v1", &id, &day])[..TAG_LEN];
    format!("{PREFIX}{id}-{day}-{tag}@{domain}")
}

/// True when `local` (lowercase) has the bounce address shape.
pub fn looks_like_bounce(local: &str) -> bool {
    local.starts_with(PREFIX)
}

/// The delivery a bounce address's lowercase local part names, if its tag
/// verifies and it is not older than `BOUNCE_VALIDITY_DAYS` (nor from the
/// future) at `now`. Delivery ids are given in upper case, as made.
pub fn check_bounce(key: &AliasKey, local: &str, now: DateTime<Utc>) -> Option<String> {
    let rest = local.strip_prefix(PREFIX)?;
    let mut parts = rest.splitn(3, '-');
    let (id, day_text, tag) = (parts.next()?, parts.next()?, parts.next()?);
    if id.len() != ID_LEN
        || !id.bytes().all(|b| b.is_ascii_alphanumeric())
        || tag.len() != TAG_LEN
        || day_text.is_empty()
        || day_text.len() > 6
        || !day_text.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let made: i64 = day_text.parse().ok()?;
    let age = day(now) - made;
    if !(-1..=BOUNCE_VALIDITY_DAYS).contains(&age) {
        return None;
    }
    let expected = &h(key, &["ct-bounce-v1", id, day_text])[..TAG_LEN];
    constant_time_eq(expected, tag).then(|| id.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AliasKey {
        AliasKey::new((0u8..32).collect()).unwrap()
    }

    #[test]
    fn round_trip_and_refusals() {
        let now: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        let id = "01JD0000000000000000000000";
        let address = bounce_address(&key(), "ct.test", id, now);
        assert_eq!(
            address.len(),
            "b-".len() + 26 + 1 + 5 + 1 + 16 + "@ct.test".len()
        );
        let local = address.split('@').next().unwrap().to_string();
        assert!(looks_like_bounce(&local));
        assert_eq!(check_bounce(&key(), &local, now).as_deref(), Some(id));
        let later = now + chrono::Duration::days(BOUNCE_VALIDITY_DAYS);
        assert_eq!(check_bounce(&key(), &local, later).as_deref(), Some(id));
        // Stale, forged, or not ours.
        assert_eq!(
            check_bounce(&key(), &local, later + chrono::Duration::days(1)),
            None
        );
        let forged = format!("{}0", &local[..local.len() - 1]);
        let forged = if forged == local {
            format!("{}1", &local[..local.len() - 1])
        } else {
            forged
        };
        assert_eq!(check_bounce(&key(), &forged, now), None);
        let other_id = local.replacen("01jd", "01je", 1);
        assert_eq!(check_bounce(&key(), &other_id, now), None);
        let other_key = AliasKey::new(vec![7; 32]).unwrap();
        assert_eq!(check_bounce(&other_key, &local, now), None);
        assert_eq!(check_bounce(&key(), "b-x-1-2", now), None);
    }
}
