//! The alias parser: `Aliaser::check_at`, which decides at RCPT, before any
//! database read, whether an address is foreign, a forged alias, or a real one.
//!
//! Checks, besides "no panic":
//! - an alias made for any valid participant checks as `Valid`, with the
//!   key the participant is stored under and the mode it was made in, in
//!   any letter case;
//! - changing one character of its local part makes it not `Valid` (or
//!   `Valid` under another key: never the same participant);
//! - a hard alias made with another key is not `Valid` (its tag has 48 bits;
//!   a soft alias's has 20, as docs/REFERENCE.md gives it, so about one in a million
//!   soft aliases checks under another key too: the fuzzer found such pairs,
//!   and the database lookup after the check is what refuses them);
//! - any other text checks without panicking, and `Valid` only comes with a
//!   key that is the address in lower case.

#![no_main]

use arbitrary::Arbitrary;
use chrono::{TimeZone, Utc};
use ct_relay::alias::{MaskMode, Role, TagCheck};
use libfuzzer_sys::fuzz_target;
use shared::{aliaser, flip};

mod shared;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    store: &'a str,
    order: &'a str,
    role: u8,
    email: &'a str,
    soft: bool,
    flip_at: u16,
    flip_to: u8,
    other: &'a str,
}

fuzz_target!(|input: Input<'_>| {
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap();
    let relay = aliaser(0);

    if let TagCheck::Valid { key, .. } = relay.check_at(input.other, now) {
        assert_eq!(key, input.other.to_lowercase());
    }

    let role = [Role::Customer, Role::Store, Role::Contact][input.role as usize % 3];
    let mode = if input.soft {
        MaskMode::Soft
    } else {
        MaskMode::Hard
    };
    let Ok(p) = relay.participant(input.store, input.order, role, input.email, mode, now) else {
        return;
    };
    let valid = TagCheck::Valid {
        key: p.key(),
        mode: p.mode,
    };
    assert_eq!(relay.check_at(&p.alias, now), valid, "alias {}", p.alias);
    assert_eq!(relay.check_at(&p.alias.to_uppercase(), now), valid);
    if p.mode == MaskMode::Hard {
        assert!(
            !matches!(aliaser(1).check_at(&p.alias, now), TagCheck::Valid { .. }),
            "another key accepts {}",
            p.alias
        );
    }

    if let Some(changed) = flip(&p.alias, input.flip_at.into(), input.flip_to) {
        if let TagCheck::Valid { key, .. } = relay.check_at(&changed, now) {
            assert_ne!(key, p.key(), "{changed} passes as {}", p.alias);
        }
    }
});
