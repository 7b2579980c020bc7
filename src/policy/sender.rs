//! No spoofing of participants. A message whose From or envelope sender is
//! a participant's address gets that participant's alias only when the
//! sender is authenticated for the address:
//! - SPF or DKIM passes aligned with the address's domain (DMARC's relaxed
//!   alignment: the same organizational domain), or
//! - the client is in `smtp.trusted_networks`, or
//! - the store approved the sender, and SPF or DKIM vouches for that
//!   approved identity (an ERP sending as the store through its own
//!   servers: SPF passes for the ERP's domain, not the store's). An
//!   approved entry nobody authenticated for counts for nothing: anyone can
//!   write any address in From.

use crate::sender_auth::organizational_domain;

use super::settings::StorePolicy;

/// One check's outcome, as the rule needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The check passed.
    Pass,
    /// No answer from DNS (or the check ran out of time): undecided.
    TempError,
    /// Anything else: fail, softfail, neutral, none, permerror.
    NoPass,
}

/// What SPF and DKIM said of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// SPF's outcome and the domain it is about (the envelope sender's, or
    /// the HELO name for the null sender), lowercase.
    pub spf: (Outcome, String),
    /// Each DKIM signature's outcome and its `d=`, lowercase.
    pub dkim: Vec<(Outcome, String)>,
}

impl Evidence {
    /// Every check ran out of time.
    pub fn timed_out() -> Self {
        Self {
            spf: (Outcome::TempError, String::new()),
            dkim: vec![(Outcome::TempError, String::new())],
        }
    }

    fn undecided(&self) -> bool {
        self.spf.0 == Outcome::TempError || self.dkim.iter().any(|(o, _)| *o == Outcome::TempError)
    }

    /// Domains a passing check vouches for.
    fn passed_domains(&self) -> impl Iterator<Item = &str> {
        let spf = (self.spf.0 == Outcome::Pass).then_some(self.spf.1.as_str());
        spf.into_iter().chain(
            self.dkim
                .iter()
                .filter(|(o, _)| *o == Outcome::Pass)
                .map(|(_, d)| d.as_str()),
        )
    }
}

/// Who is on the other end, as far as the door can tell.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    /// SPF and DKIM; `None` when checking is off (`auth.check = false`):
    /// every claim stands then.
    pub evidence: Option<&'a Evidence>,
    /// The client's address is in `smtp.trusted_networks`.
    pub trusted: bool,
    /// The envelope sender, canonical; empty for the null sender.
    pub mail_from: &'a str,
}

/// Where a claim of a participant's address stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// SPF or DKIM passed aligned with the address's domain, or the client is trusted.
    Authenticated,
    /// Nothing authenticated it.
    Unauthenticated,
    /// A check that could have authenticated it got no answer.
    Undecided,
}

/// How a message claiming `address` (canonical) stands.
pub fn standing(address: &str, client: &Client<'_>, policy: &StorePolicy) -> Standing {
    let Some(evidence) = client.evidence else {
        return Standing::Authenticated;
    };
    if client.trusted || approved_sender(client, policy) {
        return Standing::Authenticated;
    }
    let Some((_, domain)) = address.rsplit_once('@') else {
        return Standing::Unauthenticated;
    };
    let org = organizational_domain(domain);
    if evidence
        .passed_domains()
        .any(|d| organizational_domain(d).eq_ignore_ascii_case(org))
    {
        Standing::Authenticated
    } else if evidence.undecided() {
        Standing::Undecided
    } else {
        Standing::Unauthenticated
    }
}

/// The client is one of the store's approved senders, as far as the checks
/// vouch: the envelope sender (its address or a domain above it) with SPF
/// passing, or a passing DKIM signature's `d=` at or below an approved
/// domain. With checking off, the envelope sender's word is taken.
pub fn approved_sender(client: &Client<'_>, policy: &StorePolicy) -> bool {
    if policy.approved_senders.is_empty() {
        return false;
    }
    let Some(evidence) = client.evidence else {
        return policy.approves(client.mail_from);
    };
    let spf_passed = evidence.spf.0 == Outcome::Pass;
    if spf_passed && !client.mail_from.is_empty() && policy.approves(client.mail_from) {
        return true;
    }
    evidence
        .passed_domains()
        .any(|domain| policy.approves_domain(domain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::settings::PolicyUpdate;

    use Outcome::*;

    fn evidence(spf: (Outcome, &str), dkim: &[(Outcome, &str)]) -> Evidence {
        Evidence {
            spf: (spf.0, spf.1.to_string()),
            dkim: dkim.iter().map(|(o, d)| (*o, d.to_string())).collect(),
        }
    }

    fn client<'a>(e: &'a Evidence, mail_from: &'a str) -> Client<'a> {
        Client {
            evidence: Some(e),
            trusted: false,
            mail_from,
        }
    }

    fn stand(e: &Evidence) -> Standing {
        standing(
            "sac@acme-store.com",
            &client(e, "bounce@em1846.acme-store.com"),
            &StorePolicy::default(),
        )
    }

    fn approving(list: &[&str]) -> StorePolicy {
        PolicyUpdate {
            approved_senders: Some(list.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
        .apply(&StorePolicy::default())
        .unwrap()
    }

    #[test]
    fn aligned_spf_or_dkim_authenticates() {
        // SPF for the ESP's bounce subdomain: same organizational domain.
        assert_eq!(
            stand(&evidence((Pass, "em1846.acme-store.com"), &[])),
            Standing::Authenticated
        );
        assert_eq!(
            stand(&evidence(
                (NoPass, "esp.example"),
                &[(Pass, "acme-store.com")]
            )),
            Standing::Authenticated
        );
    }

    #[test]
    fn misaligned_passes_do_not() {
        assert_eq!(
            stand(&evidence((Pass, "esp.example"), &[(Pass, "other.example")])),
            Standing::Unauthenticated
        );
        assert_eq!(
            stand(&evidence(
                (NoPass, "acme-store.com"),
                &[(NoPass, "acme-store.com")]
            )),
            Standing::Unauthenticated
        );
        // A look-alike registrable domain is another domain.
        assert_eq!(
            stand(&evidence((Pass, "acme-store.com.evil.example"), &[])),
            Standing::Unauthenticated
        );
    }

    #[test]
    fn no_dns_answer_is_undecided_unless_something_else_passed() {
        assert_eq!(stand(&Evidence::timed_out()), Standing::Undecided);
        assert_eq!(
            stand(&evidence((TempError, "acme-store.com"), &[])),
            Standing::Undecided
        );
        assert_eq!(
            stand(&evidence(
                (TempError, "acme-store.com"),
                &[(Pass, "acme-store.com")]
            )),
            Standing::Authenticated
        );
    }

    #[test]
    fn trusted_clients_and_checking_off_stand() {
        let none = evidence((NoPass, "x.example"), &[]);
        let trusted = Client {
            trusted: true,
            ..client(&none, "")
        };
        assert_eq!(
            standing("sac@acme-store.com", &trusted, &StorePolicy::default()),
            Standing::Authenticated
        );
        let off = Client {
            evidence: None,
            trusted: false,
            mail_from: "",
        };
        assert_eq!(
            standing("sac@acme-store.com", &off, &StorePolicy::default()),
            Standing::Authenticated
        );
    }

    #[test]
    fn an_approved_sender_counts_only_when_spf_or_dkim_vouches_for_it() {
        let policy = approving(&["erp.example", "noreply@carrier.example"]);
        // The ERP's servers pass SPF for its own domain.
        let spf = evidence((Pass, "erp.example"), &[]);
        assert_eq!(
            standing(
                "sac@acme-store.com",
                &client(&spf, "out@erp.example"),
                &policy
            ),
            Standing::Authenticated
        );
        // A subdomain of an approved domain, by DKIM.
        let dkim = evidence((NoPass, "x.example"), &[(Pass, "mail.erp.example")]);
        assert_eq!(
            standing("sac@acme-store.com", &client(&dkim, "x@x.example"), &policy),
            Standing::Authenticated
        );
        // An approved address, SPF passing for its envelope.
        let carrier = evidence((Pass, "carrier.example"), &[]);
        assert_eq!(
            standing(
                "sac@acme-store.com",
                &client(&carrier, "noreply@carrier.example"),
                &policy
            ),
            Standing::Authenticated
        );
        // Another address of the carrier's domain is not approved.
        assert_eq!(
            standing(
                "sac@acme-store.com",
                &client(&carrier, "other@carrier.example"),
                &policy
            ),
            Standing::Unauthenticated
        );
        // Claiming to be the ERP without passing anything: nothing.
        let failed = evidence((NoPass, "erp.example"), &[(NoPass, "erp.example")]);
        assert_eq!(
            standing(
                "sac@acme-store.com",
                &client(&failed, "out@erp.example"),
                &policy
            ),
            Standing::Unauthenticated
        );
    }
}
