//! What the alias and bounce-address targets share: the relay's codec under
//! a fixed key, and a one-character change to an address.

use ct_relay::alias::{AliasKey, Aliaser, Ttl};

pub const DOMAIN: &str = "ct.fuzz.test";

/// The codec with a 32-byte key; another `seed` gives another key.
pub fn aliaser(seed: u8) -> Aliaser {
    let key = AliasKey::new((0u8..32).map(|b| b ^ seed).collect()).expect("32 bytes");
    Aliaser::new(key, DOMAIN, "2months".parse::<Ttl>().expect("ttl"))
}

/// `address` with one byte of its local part (`at`, wrapped) made `to`
/// (7-bit), or None when that changes nothing but letter case or would not
/// be text.
pub fn flip(address: &str, at: usize, to: u8) -> Option<String> {
    let at = at % address.rfind('@')?.max(1);
    let to = to & 0x7f;
    if !address.is_char_boundary(at) || !address.is_char_boundary(at + 1) {
        return None;
    }
    let mut changed = address.as_bytes().to_vec();
    if changed[at].eq_ignore_ascii_case(&to) {
        return None;
    }
    changed[at] = to;
    String::from_utf8(changed).ok()
}
