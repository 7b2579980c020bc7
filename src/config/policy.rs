//! Configuration of the door (docs/REFERENCE.md, "Trust at the door"): scanning (`[scan]`)
//! and the rate limits that protect a buyer (`[policy]`). Store settings
//! (authentication, spam, bulk, attachments) are per store, through the API.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::ConfigError;

/// `smtp.trusted_networks`: clients whose mail counts as authenticated for
/// any participant, as Postfix's `mynetworks` do. CIDR entries
/// (`10.0.0.0/8`, `::1/128`); a bare address is one host.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct TrustedNetworks(Vec<IpNet>);

impl TryFrom<Vec<String>> for TrustedNetworks {
    type Error = String;

    fn try_from(entries: Vec<String>) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| {
                let e = e.trim();
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!(
                            "smtp.trusted_networks: `{e}` is not a network (CIDR) or an address"
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }
}

impl TrustedNetworks {
    /// Whether `ip` is in one of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// True when no network is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What to do with mail the scanner could not judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnScanError {
    /// `451 4.7.0`: the sender tries again later.
    #[default]
    Tempfail,
    /// Accepted, and `unscanned` on the timeline.
    Accept,
}

/// Spam and malware scanning with rspamd (off while `rspamd_url` is unset).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanSettings {
    /// rspamd's normal worker, e.g. `http://127.0.0.1:11333`.
    pub rspamd_url: Option<url::Url>,
    /// One scan, connection and answer; then `on_error`.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// What a scanner failure does to the message.
    pub on_error: OnScanError,
    /// rspamd symbols that mean the antivirus found malware.
    pub virus_symbols: Vec<String>,
    /// rspamd symbols that mean the antivirus could not scan.
    pub failure_symbols: Vec<String>,
}

impl Default for ScanSettings {
    fn default() -> Self {
        Self {
            rspamd_url: None,
            timeout: Duration::from_secs(15),
            on_error: OnScanError::Tempfail,
            virus_symbols: vec!["CLAM_VIRUS".into()],
            failure_symbols: vec!["CLAM_VIRUS_FAIL".into()],
        }
    }
}

impl ScanSettings {
    /// An error naming the key when a value cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.rspamd_url {
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(ConfigError::Invalid(format!(
                    "scan.rspamd_url `{url}` is not an http(s) URL of rspamd's normal worker"
                )));
            }
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "scan.timeout must be more than 0".into(),
            ));
        }
        Ok(())
    }
}

/// Messages an alias takes in an hour (`450 4.7.1` past them), counted over
/// the mail accepted on every node. The store's own mail and its approved
/// senders' have the `privileged_` budgets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySettings {
    /// From one sender to one alias.
    pub per_sender_and_alias_per_hour: u32,
    /// To one alias, from everyone.
    pub per_alias_per_hour: u32,
    /// The store's authenticated mail and approved senders: per sender and alias.
    pub privileged_per_sender_and_alias_per_hour: u32,
    /// The store's authenticated mail and approved senders: per alias.
    pub privileged_per_alias_per_hour: u32,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            per_sender_and_alias_per_hour: 20,
            per_alias_per_hour: 100,
            privileged_per_sender_and_alias_per_hour: 200,
            privileged_per_alias_per_hour: 500,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_networks_are_cidrs_or_single_addresses() {
        let t = TrustedNetworks::try_from(vec![
            "127.0.0.0/8".to_string(),
            "2001:db8::/32".into(),
            "192.0.2.7".into(),
        ])
        .unwrap();
        for yes in [
            "127.0.0.1",
            "127.9.9.9",
            "2001:db8::1",
            "192.0.2.7",
            "::ffff:127.0.0.1",
        ] {
            assert!(t.contains(yes.parse().unwrap()), "{yes}");
        }
        for no in ["10.0.0.1", "192.0.2.8", "::1"] {
            assert!(!t.contains(no.parse().unwrap()), "{no}");
        }
        let err = TrustedNetworks::try_from(vec!["10.0.0.0/33".to_string()]).unwrap_err();
        assert!(err.contains("`10.0.0.0/33`"), "{err}");
    }
}
