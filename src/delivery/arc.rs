//! ARC sealing (RFC 8617, by mail-auth) of every masked copy. Masking
//! rewrites From, To and Cc, which breaks the original author's DKIM
//! signature; the seal carries what the relay found when the message
//! arrived (SPF, DKIM, DMARC and the ARC chain it came with) under the
//! relay's key, so a receiver that trusts the relay can still judge the
//! original. The key is the DKIM key (`d=` the alias domain).
//!
//! An incoming chain that validated on arrival and survived masking is
//! extended (`cv=pass`); any other incoming chain is removed by masking and
//! the relay's set starts a new one (`i=1`, `cv=none`): a broken chain
//! passed on would only make receivers distrust the message.

use mail_auth::arc::{ArcSealer, Set};
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::{Header, HeaderWriter};
use mail_auth::dkim::Done;
use mail_auth::{ArcOutput, AuthenticatedMessage, AuthenticationResults, DkimResult};

use super::dkim::{DkimError, SigningKey, SIGNED_FIELDS};

enum Sealer {
    Rsa(Box<ArcSealer<RsaKey<Sha256>, Done>>),
    Ed25519(Box<ArcSealer<Ed25519Key, Done>>),
}

/// Adds the relay's ARC set to masked copies, for one domain and selector.
pub struct ArcSealing {
    sealer: Sealer,
}

impl ArcSealing {
    /// A sealer from a PEM private key (RSA or Ed25519), for `d=domain` and `s=selector`.
    pub fn from_pem(pem: &[u8], domain: &str, selector: &str) -> Result<Self, DkimError> {
        let sealer = match SigningKey::from_pem(pem)? {
            SigningKey::Ed25519(key) => Sealer::Ed25519(Box::new(
                ArcSealer::from_key(key)
                    .domain(domain)
                    .selector(selector)
                    .headers(SIGNED_FIELDS),
            )),
            SigningKey::Rsa(key) => Sealer::Rsa(Box::new(
                ArcSealer::from_key(key)
                    .domain(domain)
                    .selector(selector)
                    .headers(SIGNED_FIELDS),
            )),
        };
        Ok(Self { sealer })
    }

    /// `message` with the relay's ARC set in front: ARC-Seal,
    /// ARC-Message-Signature and ARC-Authentication-Results carrying
    /// `results`. `chain_passed`: the chain the message arrived with
    /// validated, and `message` still holds it, whole; otherwise `message`
    /// must hold no ARC field.
    pub fn seal(
        &self,
        message: &[u8],
        results: &AuthenticationResults<'_>,
        chain_passed: bool,
    ) -> Result<Vec<u8>, String> {
        let parsed = AuthenticatedMessage::parse(message).ok_or("the message has no header")?;
        let mut chain = ArcOutput::default();
        if chain_passed && !parsed.as_headers.is_empty() {
            chain = chain.with_result(DkimResult::Pass);
            for set in incoming_sets(&parsed)? {
                chain = chain.with_set(set);
            }
        } else if !parsed.as_headers.is_empty() || !parsed.ams_headers.is_empty() {
            return Err("an ARC chain that did not validate is still in the message".into());
        }
        let set = match &self.sealer {
            Sealer::Rsa(s) => s.seal(&parsed, results, &chain),
            Sealer::Ed25519(s) => s.seal(&parsed, results, &chain),
        }
        .map_err(|e| e.to_string())?;
        let header = set.to_header();
        let mut sealed = Vec::with_capacity(header.len() + message.len());
        sealed.extend_from_slice(header.as_bytes());
        sealed.extend_from_slice(message);
        Ok(sealed)
    }
}

/// The ARC sets `parsed` holds, in instance order (mail-auth sorts them).
fn incoming_sets<'x>(parsed: &'x AuthenticatedMessage<'x>) -> Result<Vec<Set<'x>>, String> {
    let (seals, signatures, results) =
        (&parsed.as_headers, &parsed.ams_headers, &parsed.aar_headers);
    if parsed.has_arc_errors || seals.len() != signatures.len() || seals.len() != results.len() {
        return Err("the incoming ARC chain is incomplete".into());
    }
    let mut sets = Vec::with_capacity(seals.len());
    for ((seal, signature), result) in seals.iter().zip(signatures).zip(results) {
        let (Ok(s), Ok(m), Ok(r)) = (&seal.header, &signature.header, &result.header) else {
            return Err("an incoming ARC field does not parse".into());
        };
        sets.push(Set {
            seal: Header::new(seal.name, seal.value, s),
            signature: Header::new(signature.name, signature.value, m),
            results: Header::new(result.name, result.value, r),
        });
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::super::dkim::{generate, KeyAlgorithm};
    use super::*;

    const MESSAGE: &[u8] =
        b"From: <c2db@ct.test>\r\nTo: <5e1f@ct.test>\r\nSubject: Hi\r\n\r\nBody\r\n";

    #[test]
    fn a_message_without_a_chain_gets_instance_one() {
        for algorithm in [KeyAlgorithm::Ed25519, KeyAlgorithm::Rsa] {
            let key = generate(algorithm).unwrap();
            let sealing =
                ArcSealing::from_pem(key.private_pem.as_bytes(), "ct.test", "s1").unwrap();
            let results = AuthenticationResults::new("mx.ct.test");
            let sealed =
                String::from_utf8(sealing.seal(MESSAGE, &results, false).unwrap()).unwrap();
            assert!(sealed.starts_with("ARC-Seal: i=1;"), "{sealed}");
            assert!(sealed.contains("cv=none"), "{sealed}");
            assert!(sealed.contains("ARC-Message-Signature: i=1;"), "{sealed}");
            assert!(
                sealed.contains("ARC-Authentication-Results: i=1; mx.ct.test"),
                "{sealed}"
            );
            assert!(sealed.ends_with(std::str::from_utf8(MESSAGE).unwrap()));
        }
    }

    #[test]
    fn a_leftover_chain_is_not_extended_blindly() {
        let key = generate(KeyAlgorithm::Ed25519).unwrap();
        let sealing = ArcSealing::from_pem(key.private_pem.as_bytes(), "ct.test", "s1").unwrap();
        let results = AuthenticationResults::new("mx.ct.test");
        let mut message =
            b"ARC-Seal: i=1; a=ed25519-sha256; cv=none; d=x.test; s=s; b=AAAA\r\n".to_vec();
        message.extend_from_slice(MESSAGE);
        assert!(sealing.seal(&message, &results, false).is_err());
    }
}
