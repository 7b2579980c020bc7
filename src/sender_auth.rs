//! Who really sent it: SPF, DKIM and DMARC of incoming mail (mail-auth).
//! The verdicts go into an `Authentication-Results` field on the masked
//! copy and onto the timeline; a store can have mail that fails DMARC where
//! the sender's domain asks for `p=reject` refused (`auth.dmarc_reject`).
//! Only domains are ever written, never a local part.

use std::net::{IpAddr, SocketAddr};

use crate::config::{AuthSettings, ConfigError};
use crate::policy::{Evidence, Outcome};
use crate::storage::AuthSummary;
use mail_auth::dkim::Signature;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::Policy;
use mail_auth::hickory_resolver::config::{
    NameServerConfig, ProtocolConfig, ResolverConfig, ResolverOpts,
};
use mail_auth::hickory_resolver::system_conf::read_system_conf;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    ArcOutput, AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult, DmarcResult,
    Error, MessageAuthenticator, SpfOutput, SpfResult,
};

/// What the checks of one message found.
pub struct Checked<'h> {
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
    /// The same verdicts (and the ARC chain's) for the relay's ARC set,
    /// domains only.
    pub arc_results: AuthenticationResults<'h>,
    /// The ARC chain the message arrived with validated.
    pub arc_chain_passed: bool,
}

/// What `verify` found, before it is written down.
struct Verified<'h> {
    summary: AuthSummary,
    arc: &'static str,
    dkim_domains: Vec<String>,
    from_domain: Option<String>,
    reject: Option<String>,
    evidence: Evidence,
    arc_results: AuthenticationResults<'h>,
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
    pub async fn check(
        &self,
        message: &[u8],
        ip: IpAddr,
        helo: &str,
        mail_from: &str,
    ) -> Checked<'_> {
        let helo = clean(helo);
        let checked = tokio::time::timeout(
            self.settings.timeout,
            self.verify(message, ip, &helo, mail_from),
        )
        .await;
        let v = checked.unwrap_or_else(|_| self.timed_out(ip, &helo, mail_from));
        let identity = match mail_from.rsplit_once('@') {
            Some((_, domain)) => format!("smtp.mailfrom={}", clean(domain)),
            None => format!("smtp.helo={helo}"),
        };
        let mut field = format!(
            "Authentication-Results: {};\r\n\tspf={} {identity};\r\n\tdkim={}",
            self.hostname, v.summary.spf, v.summary.dkim
        );
        for d in v.dkim_domains {
            field.push_str(&format!(" header.d={}", clean(&d)));
        }
        field.push_str(&format!(";\r\n\tdmarc={}", v.summary.dmarc));
        if let Some(d) = &v.from_domain {
            field.push_str(&format!(" header.from={}", clean(d)));
        }
        field.push_str(&format!(";\r\n\tarc={}\r\n", v.arc));
        Checked {
            summary: v.summary,
            evidence: v.evidence,
            field,
            reject: v.reject.filter(|_| self.settings.dmarc_reject),
            arc_results: v.arc_results,
            arc_chain_passed: v.arc == "pass",
        }
    }

    /// What a check that ran out of time reports: `temperror` throughout.
    fn timed_out(&self, ip: IpAddr, helo: &str, mail_from: &str) -> Verified<'_> {
        let t = "temperror".to_string();
        let dns = || Error::DnsError("timed out".into());
        let domain = mail_from.rsplit_once('@').map_or(helo, |(_, d)| d);
        let spf = SpfOutput::new(domain.to_string()).with_result(SpfResult::TempError);
        let arc_results = self
            .spf_results(&spf, ip, helo, mail_from)
            .with_dkim_result(&DkimOutput::temp_err(dns()), "")
            .with_arc_result(
                &ArcOutput::default().with_result(DkimResult::TempError(dns())),
                ip,
            );
        Verified {
            summary: AuthSummary {
                spf: t.clone(),
                dkim: t.clone(),
                dmarc: t,
            },
            arc: "temperror",
            dkim_domains: Vec::new(),
            from_domain: None,
            reject: None,
            evidence: Evidence::timed_out(),
            arc_results,
        }
    }

    /// The ARC set's results, begun with SPF's: the envelope sender's
    /// domain only, never its local part.
    fn spf_results(
        &self,
        spf: &SpfOutput,
        ip: IpAddr,
        helo: &str,
        mail_from: &str,
    ) -> AuthenticationResults<'_> {
        let results = AuthenticationResults::new(&self.hostname);
        match mail_from.rsplit_once('@') {
            Some((_, domain)) => results.with_spf_mailfrom_result(spf, ip, &clean(domain), helo),
            None => results.with_spf_ehlo_result(spf, ip, helo),
        }
    }

    async fn verify(
        &self,
        message: &[u8],
        ip: IpAddr,
        helo: &str,
        mail_from: &str,
    ) -> Verified<'_> {
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
        let arc_results = self.spf_results(&spf, ip, helo, mail_from);
        let Some(parsed) = AuthenticatedMessage::parse(message) else {
            let unparsable = || DkimResult::PermError(Error::ParseError);
            return Verified {
                summary: AuthSummary {
                    spf: spf_word.into(),
                    dkim: "permerror".into(),
                    dmarc: "permerror".into(),
                },
                arc: "permerror",
                dkim_domains: Vec::new(),
                from_domain: None,
                reject: None,
                evidence: Evidence {
                    spf: spf_evidence,
                    dkim: Vec::new(),
                },
                arc_results: arc_results
                    .with_dkim_result(&DkimOutput::perm_err(Error::ParseError), "")
                    .with_arc_result(&ArcOutput::default().with_result(unparsable()), ip),
            };
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
        let arc = self.authenticator.verify_arc(&parsed).await;
        let arc_word = match arc.result() {
            DkimResult::Pass => "pass",
            DkimResult::None => "none",
            DkimResult::TempError(_) => "temperror",
            _ => "fail",
        };
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
        // DKIM's `i=` may be a mailbox: the seal's results name `d=` only.
        let signatures: Vec<Option<Signature>> = dkim
            .iter()
            .map(|o| {
                o.signature().map(|s| Signature {
                    i: String::new(),
                    ..s.clone()
                })
            })
            .collect();
        let mut arc_results = arc_results;
        for (output, signature) in dkim.iter().zip(&signatures) {
            let mut domain_only = match output.result().clone() {
                DkimResult::Pass => DkimOutput::pass(),
                DkimResult::Neutral(e) => DkimOutput::neutral(e),
                DkimResult::Fail(e) => DkimOutput::fail(e),
                DkimResult::PermError(e) => DkimOutput::perm_err(e),
                DkimResult::TempError(e) => DkimOutput::temp_err(e),
                DkimResult::None => continue,
            };
            if let Some(signature) = signature {
                domain_only = domain_only.with_signature(signature);
            }
            arc_results.set_dkim_result(&domain_only, "");
        }
        let arc_results = arc_results
            .with_dmarc_result(&dmarc)
            .with_arc_result(&arc, ip);
        Verified {
            summary: AuthSummary {
                spf: spf_word.into(),
                dkim: dkim_word.into(),
                dmarc: dmarc_word.into(),
            },
            arc: arc_word,
            dkim_domains,
            from_domain,
            reject,
            evidence,
            arc_results,
        }
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
