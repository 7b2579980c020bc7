//! DKIM signatures on outgoing mail (RFC 6376, signed by mail-auth). Mail
//! leaves with `d=` the alias domain: every From the relay sends is an alias
//! under it, so the signature aligns with the From for DMARC whatever the
//! original sender's domain publishes.

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{DkimSigner, Done};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;

/// The fields signed, where present (mail-auth signs those the message has).
pub(super) const SIGNED_FIELDS: [&str; 13] = [
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// Why a DKIM key could not be used or made.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error(
        "dkim: the private key is not a PEM RSA (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8) key: {0}"
    )]
    /// The key file could not be read as a private key.
    Key(String),
    /// Making a key failed.
    #[error("dkim: cannot make a key: {0}")]
    Generate(String),
}

/// A private key read from PEM: Ed25519 (PKCS#8) or RSA (PKCS#1 or PKCS#8).
pub(super) enum SigningKey {
    Rsa(RsaKey<Sha256>),
    Ed25519(Ed25519Key),
}

impl SigningKey {
    /// The key in `pem`.
    pub(super) fn from_pem(pem: &[u8]) -> Result<Self, DkimError> {
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| DkimError::Key(e.to_string()))?;
        let ed25519 = match &der {
            PrivateKeyDer::Pkcs8(p8) => Ed25519Key::from_pkcs8_der(p8.secret_pkcs8_der()).ok(),
            _ => None,
        };
        match ed25519 {
            Some(key) => Ok(Self::Ed25519(key)),
            None => RsaKey::<Sha256>::from_key_der(der)
                .map(Self::Rsa)
                .map_err(|e| DkimError::Key(e.to_string())),
        }
    }
}

enum Signer {
    Rsa(Box<DkimSigner<RsaKey<Sha256>, Done>>),
    Ed25519(Box<DkimSigner<Ed25519Key, Done>>),
}

/// Signs messages for one domain and selector.
pub struct DkimSigning {
    signer: Signer,
}

impl DkimSigning {
    /// A signer from a PEM private key (RSA or Ed25519), for `d=domain` and `s=selector`.
    pub fn from_pem(pem: &[u8], domain: &str, selector: &str) -> Result<Self, DkimError> {
        let signer = match SigningKey::from_pem(pem)? {
            SigningKey::Ed25519(key) => Signer::Ed25519(Box::new(
                DkimSigner::from_key(key)
                    .domain(domain)
                    .selector(selector)
                    .headers(SIGNED_FIELDS),
            )),
            SigningKey::Rsa(key) => Signer::Rsa(Box::new(
                DkimSigner::from_key(key)
                    .domain(domain)
                    .selector(selector)
                    .headers(SIGNED_FIELDS),
            )),
        };
        Ok(Self { signer })
    }

    /// `message` with a DKIM-Signature field in front.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let signature = match &self.signer {
            Signer::Rsa(s) => s.sign(message),
            Signer::Ed25519(s) => s.sign(message),
        }
        .map_err(|e| e.to_string())?;
        let header = signature.to_header();
        let mut signed = Vec::with_capacity(header.len() + message.len());
        signed.extend_from_slice(header.as_bytes());
        signed.extend_from_slice(message);
        Ok(signed)
    }
}

/// The kind of key `dkim generate` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyAlgorithm {
    /// RSA, 2048 bits: verified everywhere.
    Rsa,
    /// Ed25519 (RFC 8463): short, but not verified by every receiver.
    Ed25519,
}

/// A new key: its PEM (for `dkim.private_key_file`) and the DNS TXT value.
pub struct GeneratedKey {
    /// The private key (PKCS#8 PEM).
    pub private_pem: String,
    /// The DNS TXT value to publish.
    pub txt: String,
}

/// A new key and the TXT record that publishes it.
pub fn generate(algorithm: KeyAlgorithm) -> Result<GeneratedKey, DkimError> {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let (label, private, txt) = match algorithm {
        KeyAlgorithm::Rsa => {
            let pair = mail_auth::dkim::generate::DkimKeyPair::generate_rsa(2048)
                .map_err(|e| DkimError::Generate(e.to_string()))?;
            let txt = format!("v=DKIM1; k=rsa; p={}", b64(pair.public_key()));
            ("RSA PRIVATE KEY", pair.private_key().to_vec(), txt)
        }
        KeyAlgorithm::Ed25519 => {
            let pkcs8 =
                Ed25519Key::generate_pkcs8().map_err(|e| DkimError::Generate(e.to_string()))?;
            let key = Ed25519Key::from_pkcs8_der(&pkcs8)
                .map_err(|e| DkimError::Generate(e.to_string()))?;
            let txt = format!("v=DKIM1; k=ed25519; p={}", b64(&key.public_key()));
            ("PRIVATE KEY", pkcs8, txt)
        }
    };
    let body = b64(&private);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    Ok(GeneratedKey {
        private_pem: pem,
        txt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] =
        b"From: <c2db@ct.test>\r\nTo: <buyer@example.com>\r\nSubject: Hi\r\n\r\nBody\r\n";

    #[test]
    fn generated_keys_sign() {
        for algorithm in [KeyAlgorithm::Ed25519, KeyAlgorithm::Rsa] {
            let key = generate(algorithm).unwrap();
            let signing =
                DkimSigning::from_pem(key.private_pem.as_bytes(), "ct.test", "s1").unwrap();
            let signed = String::from_utf8(signing.sign(MESSAGE).unwrap()).unwrap();
            assert!(signed.starts_with("DKIM-Signature: "), "{signed}");
            assert!(
                signed.contains("d=ct.test") && signed.contains("s=s1"),
                "{signed}"
            );
            assert!(signed.ends_with(std::str::from_utf8(MESSAGE).unwrap()));
        }
    }

    #[test]
    fn bad_keys_are_named() {
        let Err(err) = DkimSigning::from_pem(b"not a key", "ct.test", "s1") else {
            panic!("accepted a bad key");
        };
        assert!(err.to_string().contains("PEM"), "{err}");
    }
}
