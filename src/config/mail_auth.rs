//! Configuration of mail authentication: checking incoming mail (`[auth]`)
//! and signing outgoing mail (`[dkim]`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Secret};

/// Checking who sent incoming mail (SPF, DKIM, DMARC).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Check, and record the results in Authentication-Results and on the timeline.
    pub check: bool,
    /// Refuse (550 5.7.1) mail failing DMARC whose domain publishes p=reject.
    pub dmarc_reject: bool,
    /// DNS servers as "ip:port"; empty: the system's.
    pub nameservers: Vec<String>,
    /// All lookups for one message; then the results are temperror.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            check: true,
            dmarc_reject: false,
            nameservers: Vec::new(),
            timeout: Duration::from_secs(5),
        }
    }
}

/// The DKIM key of `alias.domain`: `ct-relay dkim generate` makes one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimSettings {
    /// The DKIM selector: the key is published at `<selector>._domainkey.<alias.domain>`.
    pub selector: String,
    /// A PEM file (RSA or Ed25519) ...
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    /// ... or the PEM itself (e.g. from CT_RELAY__DKIM__PRIVATE_KEY).
    #[serde(default)]
    pub private_key: Option<Secret>,
    /// Seal every masked copy with an ARC set (RFC 8617) under the same key.
    #[serde(default = "yes")]
    pub arc: bool,
}

fn yes() -> bool {
    true
}

impl DkimSettings {
    /// The key's PEM bytes, from the file or the value.
    pub fn pem(&self) -> Result<Vec<u8>, ConfigError> {
        match (&self.private_key_file, &self.private_key) {
            (Some(path), None) => std::fs::read(path).map_err(|e| {
                ConfigError::Invalid(format!("dkim.private_key_file {}: {e}", path.display()))
            }),
            (None, Some(pem)) => Ok(pem.expose().as_bytes().to_vec()),
            _ => Err(ConfigError::Invalid(
                "dkim needs exactly one of private_key_file and private_key".into(),
            )),
        }
    }
}
