//! The bounce-address parser: the signed `b-<delivery>-<day>-<tag>` envelope
//! sender that reports come back to.
//!
//! Checks, besides "no panic":
//! - the address made for a delivery names that delivery while it is valid
//!   (made up to 30 days ago, or a day ahead), in any letter case, and
//!   nothing else;
//! - another key never accepts it;
//! - changing one character of it never yields the same delivery;
//! - any other `b-…` text checks without panicking and, when it is
//!   accepted, names a delivery id of 26 letters and digits.

#![no_main]

use arbitrary::Arbitrary;
use chrono::{Duration, TimeZone, Utc};
use ct_relay::alias::{TagCheck, BOUNCE_VALIDITY_DAYS};
use libfuzzer_sys::fuzz_target;
use shared::{aliaser, flip, DOMAIN};

mod shared;

const ULID_ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    id: [u8; 26],
    made_days: u16,
    age_days: i16,
    flip_at: u8,
    flip_to: u8,
    other: &'a str,
}

fuzz_target!(|input: Input<'_>| {
    let relay = aliaser(0);
    let epoch = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
    let made = epoch + Duration::days(i64::from(input.made_days)) + Duration::seconds(43_200);
    let checked = made + Duration::days(i64::from(input.age_days));

    let other = format!("b-{}@{DOMAIN}", input.other);
    if let TagCheck::Bounce { delivery_id } = relay.check_at(&other, checked) {
        assert_eq!(delivery_id.len(), 26);
        assert!(delivery_id.bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    let id: String = input
        .id
        .iter()
        .map(|&b| ULID_ALPHABET[b as usize % ULID_ALPHABET.len()] as char)
        .collect();
    let address = relay.bounce_address(&id, made);
    // A day of clock skew between nodes is allowed.
    let expect_valid = (-1..=BOUNCE_VALIDITY_DAYS).contains(&i64::from(input.age_days));
    for form in [address.clone(), address.to_uppercase()] {
        match relay.check_at(&form, checked) {
            TagCheck::Bounce { delivery_id } => {
                assert!(expect_valid, "{form} accepted {} days on", input.age_days);
                assert_eq!(delivery_id, id);
            }
            TagCheck::Invalid => {
                assert!(!expect_valid, "{form} refused {} days on", input.age_days)
            }
            other => panic!("{form} checked as {other:?}"),
        }
    }
    assert!(!matches!(
        aliaser(1).check_at(&address, checked),
        TagCheck::Bounce { .. }
    ));

    if let Some(changed) = flip(&address, input.flip_at.into(), input.flip_to) {
        if let TagCheck::Bounce { delivery_id } = relay.check_at(&changed, checked) {
            assert_ne!(delivery_id, id, "{changed} passes as {address}");
        }
    }
});
