//! Encryption at rest of what identifies a person or holds their words:
//! real addresses (`participants.email`, `deliveries.rcpt_email`,
//! `messages.return_path`) and stored message text (`messages.content`).
//!
//! Each value is sealed with XChaCha20-Poly1305 (a random 192-bit nonce
//! per value, so one key seals any number of them) under a key derived
//! from `storage.encryption_key`; the column it belongs to is bound in as
//! associated data, so a value cannot be moved to another column. Keys are
//! named by an id (a keyed hash, not the key), written with every value,
//! so values sealed under an old key stay readable while
//! `storage.encryption_old_keys` lists it (`ct-relay keys rotate` seals
//! them again under the current one).
//!
//! Stored forms:
//! - text: `enc:v1:<key id>:<blind index>:<base64 nonce‖ciphertext>`, where
//!   the blind index is an HMAC of the lowercase address under a second
//!   derived key: lookups by address match it (`schema::EMAIL_INDEX`
//!   reads it out of the column, and an expression index serves it)
//!   instead of the clear text;
//! - bytes: `\0ct-enc1` `<key id>` nonce‖ciphertext.
//!
//! Values in clear (written before encryption was turned on, or with it
//! off) are read as they are.

use std::borrow::Cow;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Result, StorageError, Write};

const TEXT_PREFIX: &str = "enc:v1:";
const BYTES_PREFIX: &[u8] = b"\0ct-enc1";
const ID_LEN: usize = 8;
const INDEX_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// Which column a value belongs to (its associated data).
#[derive(Debug, Clone, Copy)]
pub enum Field {
    /// A real address (`participants.email`, `deliveries.rcpt_email`,
    /// `messages.return_path`).
    Address,
    /// A stored message (`messages.content`).
    Message,
    /// What a timeline shows of a message: its subject, first words and
    /// attachment names (`timeline_entries`).
    Excerpt,
}

impl Field {
    fn label(self) -> &'static [u8] {
        match self {
            Field::Address => b"ct-relay address",
            Field::Message => b"ct-relay message",
            Field::Excerpt => b"ct-relay excerpt",
        }
    }
}

/// A key as configured: `hex:` and 64 hex digits (32 bytes).
pub fn parse_key(text: &str) -> std::result::Result<[u8; 32], String> {
    let hex_digits = text
        .strip_prefix("hex:")
        .ok_or("must be `hex:` followed by 64 hex digits")?;
    let bytes = hex::decode(hex_digits.trim())
        .map_err(|_| "must be `hex:` followed by 64 hex digits".to_string())?;
    bytes
        .try_into()
        .map_err(|_| "must be `hex:` followed by 64 hex digits (32 bytes)".to_string())
}

fn derive(master: &[u8; 32], label: &str) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(master).expect("any key length");
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().into()
}

/// One configured key: its id, cipher and blind-index key.
struct DataKey {
    id: String,
    cipher: XChaCha20Poly1305,
    index: [u8; 32],
}

impl DataKey {
    fn new(master: &[u8; 32]) -> Self {
        Self {
            id: hex::encode(derive(master, "ct-relay key id v1"))[..ID_LEN].to_string(),
            cipher: XChaCha20Poly1305::new(&derive(master, "ct-relay encryption v1").into()),
            index: derive(master, "ct-relay blind index v1"),
        }
    }

    fn blind_index(&self, email: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&self.index).expect("any key length");
        mac.update(email.trim().to_lowercase().as_bytes());
        let digest = hex::encode(mac.finalize().into_bytes());
        format!("{}:{}", self.id, &digest[..INDEX_LEN])
    }

    fn seal(&self, plain: &[u8], field: Field) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the system's random source works");
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: field.label(),
                },
            )
            .expect("XChaCha20-Poly1305 seals any length we store");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    fn open(&self, sealed: &[u8], field: Field) -> Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return Err(StorageError::Corrupt("a sealed value is too short".into()));
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: field.label(),
                },
            )
            .map_err(|_| {
                StorageError::Corrupt(format!(
                    "a value sealed under key {} does not open (changed, or moved between columns)",
                    self.id
                ))
            })
    }
}

/// The keys values are sealed and opened with. With no current key,
/// values are written in clear (and sealed ones still opened with the old
/// keys, so a rotation can also take encryption off).
#[derive(Default)]
pub struct Keyring {
    current: Option<DataKey>,
    old: Vec<DataKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current_id())
            .field("old", &self.old.iter().map(|k| &k.id).collect::<Vec<_>>())
            .finish()
    }
}

impl Keyring {
    /// A keyring sealing under `current` (none: in clear) and opening
    /// values of `old` keys too.
    pub fn new(current: Option<[u8; 32]>, old: &[[u8; 32]]) -> Self {
        Self {
            current: current.as_ref().map(DataKey::new),
            old: old.iter().map(DataKey::new).collect(),
        }
    }

    /// The id of the key new values are sealed under, if any.
    pub fn current_id(&self) -> Option<&str> {
        self.current.as_ref().map(|k| k.id.as_str())
    }

    fn key(&self, id: &str) -> Result<&DataKey> {
        self.current
            .iter()
            .chain(&self.old)
            .find(|k| k.id == id)
            .ok_or_else(|| {
                StorageError::Unavailable(format!(
                    "a value is sealed under key {id}, which is not configured \
                     (add it to storage.encryption_old_keys)"
                ))
            })
    }

    /// `email` as stored: sealed with its blind index, or as it is.
    pub fn seal_address(&self, email: &str) -> String {
        self.seal_text(email, Field::Address)
    }

    /// A stored address read back.
    pub fn open_address(&self, stored: &str) -> Result<String> {
        self.open_text(stored, Field::Address)
    }

    /// A text as stored: sealed (an address with its blind index, other
    /// text with an empty one), or as it is. Empty text stays empty.
    pub fn seal_text(&self, text: &str, field: Field) -> String {
        match &self.current {
            Some(k) if !text.is_empty() => {
                let sealed = base64::engine::general_purpose::STANDARD_NO_PAD
                    .encode(k.seal(text.as_bytes(), field));
                let index = match field {
                    Field::Address => k.blind_index(text),
                    _ => format!("{}:", k.id),
                };
                format!("{TEXT_PREFIX}{index}:{sealed}")
            }
            _ => text.to_string(),
        }
    }

    /// A stored text read back.
    pub fn open_text(&self, stored: &str, field: Field) -> Result<String> {
        let Some(rest) = stored.strip_prefix(TEXT_PREFIX) else {
            return Ok(stored.to_string());
        };
        let mut parts = rest.splitn(3, ':');
        let (Some(id), Some(_index), Some(sealed)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(StorageError::Corrupt("a sealed text is malformed".into()));
        };
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(sealed)
            .map_err(|_| StorageError::Corrupt("a sealed text is malformed".into()))?;
        let plain = self.key(id)?.open(&bytes, field)?;
        String::from_utf8(plain)
            .map_err(|_| StorageError::Corrupt("a sealed text is not UTF-8".into()))
    }

    /// A message's text as stored: sealed, or as it is.
    pub fn seal_message<'a>(&self, content: &'a [u8]) -> Cow<'a, [u8]> {
        match &self.current {
            Some(k) if !content.is_empty() => {
                let mut out = Vec::with_capacity(
                    BYTES_PREFIX.len() + ID_LEN + NONCE_LEN + content.len() + 16,
                );
                out.extend_from_slice(BYTES_PREFIX);
                out.extend_from_slice(k.id.as_bytes());
                out.extend_from_slice(&k.seal(content, Field::Message));
                Cow::Owned(out)
            }
            _ => Cow::Borrowed(content),
        }
    }

    /// A stored message read back.
    pub fn open_message(&self, stored: Vec<u8>) -> Result<Vec<u8>> {
        let Some(rest) = stored.strip_prefix(BYTES_PREFIX) else {
            return Ok(stored);
        };
        if rest.len() < ID_LEN {
            return Err(StorageError::Corrupt(
                "a sealed message is malformed".into(),
            ));
        }
        let (id, sealed) = rest.split_at(ID_LEN);
        let id = std::str::from_utf8(id)
            .map_err(|_| StorageError::Corrupt("a sealed message is malformed".into()))?;
        self.key(id)?.open(sealed, Field::Message)
    }

    /// The blind indexes `email` may be stored under: one per key.
    pub fn lookups(&self, email: &str) -> Vec<String> {
        self.current
            .iter()
            .chain(&self.old)
            .map(|k| k.blind_index(email))
            .collect()
    }

    /// True when a stored text is as the current key would write it
    /// (sealed under it; or in clear when there is none).
    pub fn text_is_current(&self, stored: &str) -> bool {
        self.address_is_current(stored)
    }

    /// True when a stored address is as the current key would write it
    /// (sealed under it; or in clear when there is none).
    pub fn address_is_current(&self, stored: &str) -> bool {
        match (self.current_id(), stored.strip_prefix(TEXT_PREFIX)) {
            (None, rest) => rest.is_none(),
            (Some(_), None) => {
                stored.is_empty() || stored.starts_with(super::erasure::ERASED_EMAIL_PREFIX)
            }
            (Some(id), Some(rest)) => rest.starts_with(id),
        }
    }

    /// True when a stored message is as the current key would write it.
    pub fn message_is_current(&self, stored: &[u8]) -> bool {
        match (self.current_id(), stored.strip_prefix(BYTES_PREFIX)) {
            (None, rest) => rest.is_none(),
            (Some(_), None) => stored.is_empty(),
            (Some(id), Some(rest)) => rest.starts_with(id.as_bytes()),
        }
    }

    /// The writes of a group commit as stored: addresses and message text
    /// sealed. Borrowed as they are when there is no current key.
    pub fn seal_writes<'a>(&self, batch: &'a [Write]) -> Cow<'a, [Write]> {
        if self.current.is_none() {
            return Cow::Borrowed(batch);
        }
        let sealed = batch
            .iter()
            .map(|w| {
                let mut w = w.clone();
                match &mut w {
                    Write::Accept(m) => {
                        let e = &mut m.entry;
                        e.subject = self.seal_text(&e.subject, Field::Excerpt);
                        e.first_words = self.seal_text(&e.first_words, Field::Excerpt);
                        for name in &mut e.attachment_names {
                            *name = self.seal_text(name, Field::Excerpt);
                        }
                        m.return_path = self.seal_address(&m.return_path);
                        m.content = self.seal_message(&m.content).into_owned().into();
                        for d in &mut m.deliveries {
                            d.rcpt_email = self.seal_address(&d.rcpt_email);
                        }
                        for p in &mut m.new_participants {
                            p.email = self.seal_address(&p.email);
                        }
                    }
                    Write::Attempt { notice, .. } | Write::Bounce { notice, .. } => {
                        if let Some(n) = notice {
                            n.rcpt_email = self.seal_address(&n.rcpt_email);
                            n.content = self.seal_message(&n.content).into_owned();
                        }
                    }
                    // A refusal after DATA shows the refused message's
                    // subject; one at RCPT has none (and stays comparable
                    // for collapsing repeats).
                    Write::Refusal(r) if !r.subject.is_empty() => {
                        r.subject = self.seal_text(&r.subject, Field::Excerpt);
                    }
                    Write::Refusal(_) => {}
                }
                w
            })
            .collect();
        Cow::Owned(sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 32] = [7; 32];
    const B: [u8; 32] = [9; 32];

    #[test]
    fn keys_are_read_from_hex() {
        let text = format!("hex:{}", "ab".repeat(32));
        assert_eq!(parse_key(&text).unwrap(), [0xab; 32]);
        assert!(
            parse_key(&"ab".repeat(32)).is_err(),
            "the prefix is required"
        );
        assert!(parse_key("hex:abcd").is_err(), "32 bytes exactly");
        assert!(parse_key(&format!("hex:{}", "zz".repeat(32))).is_err());
    }

    #[test]
    fn addresses_round_trip_and_hide_themselves() {
        let ring = Keyring::new(Some(A), &[]);
        let stored = ring.seal_address("Maria.Silva@example.com");
        assert!(stored.starts_with("enc:v1:"), "{stored}");
        assert!(!stored.to_lowercase().contains("maria"), "{stored}");
        assert_eq!(
            ring.open_address(&stored).unwrap(),
            "Maria.Silva@example.com"
        );
        // Two seals differ (random nonces) but share the blind index.
        let again = ring.seal_address("maria.silva@EXAMPLE.com");
        assert_ne!(stored, again);
        assert_eq!(stored[7..48], again[7..48]);
        assert_eq!(
            ring.lookups("MARIA.silva@example.com"),
            [stored[7..48].to_string()]
        );
        // Empty (the null sender) and clear values stay as they are.
        assert_eq!(ring.seal_address(""), "");
        assert_eq!(
            ring.open_address("old@example.com").unwrap(),
            "old@example.com"
        );
    }

    #[test]
    fn messages_round_trip_and_tampering_is_caught() {
        let ring = Keyring::new(Some(A), &[]);
        let stored = ring
            .seal_message(b"Subject: hi\r\n\r\nbody\r\n")
            .into_owned();
        assert!(!stored.windows(4).any(|w| w == b"body"));
        assert_eq!(
            ring.open_message(stored.clone()).unwrap(),
            b"Subject: hi\r\n\r\nbody\r\n"
        );
        let mut changed = stored.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert!(ring.open_message(changed).is_err());
        assert_eq!(ring.open_message(b"plain".to_vec()).unwrap(), b"plain");
    }

    #[test]
    fn a_value_cannot_move_to_another_column() {
        let ring = Keyring::new(Some(A), &[]);
        let address = ring.seal_address("a@example.com");
        let sealed = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(address.rsplit(':').next().unwrap())
            .unwrap();
        let mut as_message = BYTES_PREFIX.to_vec();
        as_message.extend_from_slice(ring.current_id().unwrap().as_bytes());
        as_message.extend_from_slice(&sealed);
        assert!(ring.open_message(as_message).is_err());
    }

    #[test]
    fn old_keys_open_until_rotated_and_unknown_keys_are_named() {
        let before = Keyring::new(Some(A), &[]);
        let stored = before.seal_address("a@example.com");
        let rotating = Keyring::new(Some(B), &[A]);
        assert_eq!(rotating.open_address(&stored).unwrap(), "a@example.com");
        assert!(!rotating.address_is_current(&stored));
        assert!(rotating.address_is_current(&rotating.seal_address("a@example.com")));
        assert_eq!(rotating.lookups("a@example.com").len(), 2);
        let after = Keyring::new(Some(B), &[]);
        let err = after.open_address(&stored).unwrap_err().to_string();
        assert!(err.contains(before.current_id().unwrap()), "{err}");
        // No current key: clear values are current, sealed ones are not.
        let off = Keyring::new(None, &[A]);
        assert!(off.address_is_current("a@example.com"));
        assert!(!off.address_is_current(&stored));
        assert_eq!(off.seal_address("a@example.com"), "a@example.com");
    }
}
