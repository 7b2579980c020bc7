//! Who really sent it: SPF, DKIM and DMARC of incoming mail (mail-auth).
//! The verdicts go into an `Authentication-Results` field on the masked
//! copy and onto the timeline; a store can have mail that fails DMARC where
//! the sender's domain asks for `p=reject` refused (`auth.dmarc_reject`).
//! Only domains are ever written, never a local part.

use std::net::{IpAddr, SocketAddr};

use crate::config::{AuthSettings, ConfigError};
use crate::policy::{Evidence, Outcome};
use crate::storage::AuthSummary;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::Policy;
use mail_auth::hickory_resolver::config::{
    NameServerConfig, ProtocolConfig, ResolverConfig, ResolverOpts,
};
use mail_auth::hickory_resolver::system_conf::read_system_conf;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, DkimResult, DmarcResult, MessageAuthenticator, SpfOutput, SpfResult,
};

/// What the checks of one message found.
pub struct Checked {
    /// SPF, DKIM and DMARC, as result words, for the timeline.
    pub summary: AuthSummary,
    /// What the participant rule needs: SPF's result and domain, each DKIM
    /// signature's result and `d=`.
    pub evidence: Evidence,
    /// The `Authentication-Results` field, CRLF-terminated.
    pub field: String,
    /// The sender's domain, when DMARC fails under `p=reject` and the
    /// policy is to refuse such mail.
    pub reject: Option<String>,
}

/// SPF, DKIM and DMARC of incoming mail (mail-auth) with the configured
/// resolver and time budget; `accept::Acceptor` calls it after DATA.
pub struct SenderAuth {
    authenticator: MessageAuthenticator,
    hostname: String,
    settings: AuthSettings,
}

impl SenderAuth {
    /// Checks with `settings`; `hostname` names the relay in Authentication-Results.
    pub fn new(settings: &AuthSettings, hostname: &str) -> Result<Self, ConfigError> {
        let mut opts = ResolverOpts::default();
        opts.timeout = settings.timeout;
        opts.attempts = 1;
        let authenticator = if settings.nameservers.is_empty() {
            read_system_conf().and_then(|(config, mut system)| {
                system.timeout = settings.timeout;
                system.attempts = 1;
                MessageAuthenticator::new(config, system)
            })
        } else {
            let mut config =
                ResolverConfig::from_parts(None, Vec::new(), Vec::<NameServerConfig>::new());
            for addr in &settings.nameservers {
                let addr: SocketAddr = addr.parse().map_err(|_| {
                    ConfigError::Invalid(format!("auth.nameservers: `{addr}` is not ip:port"))
                })?;
                config.add_name_server(NameServerConfig::new(addr, ProtocolConfig::Udp));
                config.add_name_server(NameServerConfig::new(addr, ProtocolConfig::Tcp));
            }
            MessageAuthenticator::new(config, opts)
        }
        .map_err(|e| ConfigError::Invalid(format!("auth: cannot set up DNS: {e}")))?;
        Ok(Self {
            authenticator,
            hostname: hostname.to_string(),
            settings: settings.clone(),
        })
    }

    /// Check `message` as received from `ip`; never takes longer than
    /// `auth.timeout` (then every result is `temperror`).
    pub async fn check(&self, message: &[u8], ip: IpAddr, helo: &str, mail_from: &str) -> Checked {
        let helo = clean(helo);
        let checked = tokio::time::timeout(
            self.settings.timeout,
            self.verify(message, ip, &helo, mail_from),
        )
        .await;
        let (summary, dkim_domains, from_domain, reject, evidence) = checked.unwrap_or_else(|_| {
            let t = "temperror".to_string();
            let summary = AuthSummary {
                spf: t.clone(),
                dkim: t.clone(),
                dmarc: t,
            };
            (summary, Vec::new(), None, None, Evidence::timed_out())
        });
        let identity = match mail_from.rsplit_once('@') {
            Some((_, domain)) => format!("smtp.mailfrom={}", clean(domain)),
            None => format!("smtp.helo={helo}"),
        };
        let mut field = format!(
            "Authentication-Results: {};\r\n\tspf={} {identity};\r\n\tdkim={}",
            self.hostname, summary.spf, summary.dkim
        );
        for d in dkim_domains {
            field.push_str(&format!(" header.d={}", clean(&d)));
        }
        field.push_str(&format!(";\r\n\tdmarc={}", summary.dmarc));
        if let Some(d) = &from_domain {
            field.push_str(&format!(" header.from={}", clean(d)));
        }
        field.push_str("\r\n");
        Checked {
            summary,
            evidence,
            field,
            reject: reject.filter(|_| self.settings.dmarc_reject),
        }
    }

    async fn verify(
        &self,
        message: &[u8],
        ip: IpAddr,
        helo: &str,
        mail_from: &str,
    ) -> (
        AuthSummary,
        Vec<String>,
        Option<String>,
        Option<String>,
        Evidence,
    ) {
        let spf_params = if mail_from.is_empty() {
            SpfParameters::verify_ehlo(ip, helo, &self.hostname)
        } else {
            SpfParameters::verify_mail_from(ip, helo, &self.hostname, mail_from)
        };
        let spf: SpfOutput = self.authenticator.verify_spf(spf_params).await;
        let spf_word = match spf.result() {
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::SoftFail => "softfail",
            SpfResult::Neutral => "neutral",
            SpfResult::TempError => "temperror",
            SpfResult::PermError => "permerror",
            SpfResult::None => "none",
        };
        let mail_from_domain = mail_from.rsplit_once('@').map_or(helo, |(_, d)| d);
        let spf_evidence = (
            match spf.result() {
                SpfResult::Pass => Outcome::Pass,
                SpfResult::TempError => Outcome::TempError,
                _ => Outcome::NoPass,
            },
            mail_from_domain.to_ascii_lowercase(),
        );
        let Some(parsed) = AuthenticatedMessage::parse(message) else {
            let summary = AuthSummary {
                spf: spf_word.into(),
                dkim: "permerror".into(),
                dmarc: "permerror".into(),
            };
            let evidence = Evidence {
                spf: spf_evidence,
                dkim: Vec::new(),
            };
            return (summary, Vec::new(), None, None, evidence);
        };
        let dkim = self.authenticator.verify_dkim(&parsed).await;
        let dkim_word = if dkim.is_empty() {
            "none"
        } else if dkim.iter().any(|o| o.result() == &DkimResult::Pass) {
            "pass"
        } else {
            match dkim[0].result() {
                DkimResult::TempError(_) => "temperror",
                DkimResult::PermError(_) => "permerror",
                DkimResult::Neutral(_) => "neutral",
                _ => "fail",
            }
        };
        let dkim_domains: Vec<String> = dkim
            .iter()
            .filter_map(|o| o.signature().map(|s| s.d.clone()))
            .collect();
        let evidence = Evidence {
            spf: spf_evidence,
            dkim: dkim
                .iter()
                .map(|o| {
                    let outcome = match o.result() {
                        DkimResult::Pass => Outcome::Pass,
                        DkimResult::TempError(_) => Outcome::TempError,
                        _ => Outcome::NoPass,
                    };
                    (
                        outcome,
                        o.signature()
                            .map(|s| s.d.to_ascii_lowercase())
                            .unwrap_or_default(),
                    )
                })
                .collect(),
        };
        let dmarc = self
            .authenticator
            .verify_dmarc(
                DmarcParameters::new(&parsed, &dkim, mail_from_domain, &spf)
                    .with_domain_suffix_fn(organizational_domain),
            )
            .await;
        let passed = |r: &DmarcResult| r == &DmarcResult::Pass;
        let temp = |r: &DmarcResult| matches!(r, DmarcResult::TempError(_));
        let dmarc_word = if dmarc.dmarc_record().is_none() {
            if temp(dmarc.spf_result()) || temp(dmarc.dkim_result()) {
                "temperror"
            } else {
                "none"
            }
        } else if passed(dmarc.spf_result()) || passed(dmarc.dkim_result()) {
            "pass"
        } else {
            "fail"
        };
        let from_domain = (!dmarc.domain().is_empty()).then(|| dmarc.domain().to_string());
        let reject = (dmarc_word == "fail" && dmarc.policy() == Policy::Reject)
            .then(|| dmarc.domain().to_string());
        let summary = AuthSummary {
            spf: spf_word.into(),
            dkim: dkim_word.into(),
            dmarc: dmarc_word.into(),
        };
        (summary, dkim_domains, from_domain, reject, evidence)
    }
}

/// The registrable part of a domain, for DMARC's relaxed alignment: the
/// last two labels, or three under a country's generic second level
/// (`vtex.com.br`, `example.co.uk`).
pub fn organizational_domain(domain: &str) -> &str {
    const SECOND_LEVELS: [&str; 9] = ["com", "net", "org", "gov", "edu", "co", "ac", "gob", "nom"];
    let labels: Vec<&str> = domain.split('.').collect();
    let n = labels.len();
    let keep = if n >= 3 && labels[n - 1].len() == 2 && SECOND_LEVELS.contains(&labels[n - 2]) {
        3
    } else {
        2
    };
    if n <= keep {
        return domain;
    }
    let skip: usize = labels[..n - keep].iter().map(|l| l.len() + 1).sum();
    &domain[skip..]
}

/// A domain or HELO name as it may appear in a header: printable ASCII, no
/// separators, bounded.
fn clean(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic() && !";()\"\\".contains(*c))
        .take(255)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organizational_domains() {
        assert_eq!(organizational_domain("mail.vtex.com.br"), "vtex.com.br");
        assert_eq!(organizational_domain("vtex.com.br"), "vtex.com.br");
        assert_eq!(organizational_domain("a.b.example.com"), "example.com");
        assert_eq!(organizational_domain("example.com"), "example.com");
        assert_eq!(organizational_domain("x.example.co.uk"), "example.co.uk");
        assert_eq!(organizational_domain("localhost"), "localhost");
    }

    #[test]
    fn header_text_is_cleaned() {
        assert_eq!(clean("evil;dkim=pass (x)"), "evildkim=passx");
    }
}
