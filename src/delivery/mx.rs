//! Direct delivery to the recipient domain's mail servers (RFC 5321
//! section 5.1): MX hosts by preference, each host's addresses in turn,
//! the domain itself when it has no MX (implicit MX), and no delivery at
//! all to a null MX (RFC 7505) or a domain that does not exist. Replies
//! name hosts by address, never by the recipient's domain, which would tell
//! the sender (and the timeline) where the buyer's mailbox is.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::{ResolveError, TokioResolver};

use super::mta_sts::{Mode, MtaSts};
use super::pool::Pool;
use super::smtp::{checked_envelope, Connector, Envelope, Hop};
use super::{DeliveryEnvelope, Outcome, Transport, TransportError};
use crate::config::OutboundTls;

/// MX hosts tried per attempt, best preference first.
const MAX_MX_HOSTS: usize = 5;
/// Addresses tried per host.
const MAX_ADDRESSES: usize = 4;
/// One DNS question may take this long.
const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// One MX host and its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxHost {
    /// The host's name (for TLS).
    pub name: String,
    /// Where it listens.
    pub addrs: Vec<IpAddr>,
}

/// Direct delivery to the recipient domain's MX hosts.
pub struct MxTransport {
    resolver: TokioResolver,
    connector: Connector,
    port: u16,
    pool: Pool,
    mta_sts: Option<MtaSts>,
}

impl MxTransport {
    /// A transport that asks `nameservers` (`ip:port`; empty: the system's
    /// resolvers) and connects to port `port` as `connector` says, keeping
    /// up to `per_host` idle connections per host address.
    pub fn new(
        connector: Connector,
        nameservers: &[String],
        port: u16,
        per_host: usize,
    ) -> Result<Self, TransportError> {
        let mut opts = ResolverOpts::default();
        opts.timeout = DNS_TIMEOUT;
        opts.attempts = 2;
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        let builder = if nameservers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| TransportError::Resolver(e.to_string()))?
        } else {
            let mut config = ResolverConfig::from_parts(None, Vec::new(), Vec::new());
            for addr in nameservers {
                let addr: SocketAddr = addr.parse().map_err(|_| {
                    TransportError::Resolver(format!("nameserver `{addr}` is not ip:port"))
                })?;
                config.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
                config.add_name_server(NameServerConfig::new(addr, Protocol::Tcp));
            }
            // Our own resolvers answer for every name, /etc/hosts included.
            opts.use_hosts_file = ResolveHosts::Never;
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
        };
        opts.ndots = 0;
        Ok(Self {
            resolver: builder.with_options(opts).build(),
            connector,
            port,
            pool: Pool::new(per_host),
            mta_sts: None,
        })
    }

    /// Honour recipient domains' MTA-STS policies, fetched over HTTPS from
    /// port `port` trusting the public roots and `extra_ca_pem`.
    pub fn with_mta_sts(mut self, port: u16, extra_ca_pem: Option<Vec<u8>>) -> Self {
        self.mta_sts = Some(MtaSts::new(self.resolver.clone(), port, extra_ca_pem));
        self
    }

    /// One transaction with `host` at `addr`; `verified`: only over TLS
    /// with a certificate valid for the host's name (kept connections of
    /// that kind apart from the others).
    async fn attempt(
        &self,
        host: &MxHost,
        addr: SocketAddr,
        label: &str,
        verified: bool,
        env: &Envelope<'_>,
        message: &[u8],
    ) -> Outcome {
        let key = match verified {
            true => format!("{addr} {} verified", host.name),
            false => format!("{addr} {}", host.name),
        };
        let hop = Hop {
            key: &key,
            host: &host.name,
            addr,
            label,
            tls: verified.then_some(OutboundTls::Required),
        };
        self.connector.deliver(&self.pool, &hop, env, message).await
    }

    /// Where mail for `domain` goes: MX hosts by preference with their
    /// addresses; the domain itself when it has no MX.
    pub async fn route(&self, domain: &str) -> Result<Vec<MxHost>, Outcome> {
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        let (names, implicit) = match self.resolver.mx_lookup(fqdn.as_str()).await {
            Ok(lookup) => {
                let mut records: Vec<_> = lookup
                    .iter()
                    .map(|mx| (mx.preference(), mx.exchange().to_ascii()))
                    .collect();
                records.sort();
                if records
                    .iter()
                    .any(|(_, host)| host == "." || host.is_empty())
                {
                    return Err(Outcome::Failed {
                        reply: "556 5.1.10 the recipient's domain accepts no mail (null MX)".into(),
                    });
                }
                let names = records.into_iter().map(|(_, host)| host);
                (names.take(MAX_MX_HOSTS).collect::<Vec<_>>(), false)
            }
            Err(e) => match negative(&e) {
                Some(ResponseCode::NoError) => (vec![fqdn], true),
                Some(ResponseCode::NXDomain) => {
                    return Err(Outcome::Failed {
                        reply: "550 5.1.2 the recipient's domain does not exist".into(),
                    })
                }
                _ => {
                    return Err(Outcome::Retry {
                        reply: format!("451 4.4.3 MX lookup failed: {}", dns_error(&e)),
                    })
                }
            },
        };
        let mut hosts = Vec::with_capacity(names.len());
        let mut missing = 0;
        for name in names {
            match self.resolver.lookup_ip(name.as_str()).await {
                Ok(ips) => hosts.push(MxHost {
                    name: name.trim_end_matches('.').to_string(),
                    addrs: ips.iter().take(MAX_ADDRESSES).collect(),
                }),
                Err(e) if negative(&e).is_some() => missing += 1,
                Err(e) => {
                    tracing::debug!(error = %dns_error(&e), "address lookup of an MX host failed")
                }
            }
        }
        if hosts.is_empty() {
            return Err(if implicit && missing > 0 {
                Outcome::Failed {
                    reply:
                        "550 5.1.2 the recipient's domain has no mail server (no MX, no address)"
                            .into(),
                }
            } else {
                Outcome::Retry {
                    reply: "451 4.4.4 no MX host of the recipient's domain has an address".into(),
                }
            });
        }
        Ok(hosts)
    }
}

/// What `enforce` refuses, logged (hosts by address, never the domain)
/// and counted: under `testing` the mail still goes.
fn mta_sts_failure(mode: Mode, label: &str, what: &str) {
    let mode = if mode == Mode::Enforce {
        "enforce"
    } else {
        "testing"
    };
    tracing::warn!(
        next_hop = label,
        mode,
        failure = what,
        "MTA-STS policy not met"
    );
    crate::telemetry::mta_sts_failure(mode);
}

/// The response code of a lookup that found nothing (NoError: the name
/// exists without such records; NXDomain: the name does not exist).
fn negative(e: &ResolveError) -> Option<ResponseCode> {
    match e.proto()?.kind() {
        ProtoErrorKind::NoRecordsFound {
            response_code: code @ (ResponseCode::NoError | ResponseCode::NXDomain),
            ..
        } => Some(*code),
        _ => None,
    }
}

/// A lookup failure without the name asked about.
fn dns_error(e: &ResolveError) -> String {
    match e.proto().map(|p| p.kind()) {
        Some(ProtoErrorKind::NoRecordsFound { response_code, .. }) => {
            format!("DNS answered {response_code}")
        }
        Some(ProtoErrorKind::Timeout) => "DNS timed out".into(),
        _ => "DNS failed".into(),
    }
}

#[async_trait]
impl Transport for MxTransport {
    async fn send(&self, envelope: &DeliveryEnvelope<'_>, message: &[u8]) -> Outcome {
        let env = match checked_envelope(envelope) {
            Ok(env) => env,
            Err(outcome) => return outcome,
        };
        let Some(domain) = destination_of(envelope.rcpt_to) else {
            return Outcome::Failed {
                reply: "553 5.1.3 invalid recipient address".into(),
            };
        };
        let hosts = match self.route(&domain).await {
            Ok(hosts) => hosts,
            Err(outcome) => return outcome,
        };
        let policy = match &self.mta_sts {
            Some(sts) => sts.policy(&domain).await,
            None => None,
        };
        let mode = policy.as_ref().map_or(Mode::None, |p| p.mode);
        let mut last = None;
        for (n, host) in hosts.iter().enumerate() {
            if mode != Mode::None && !policy.as_ref().is_some_and(|p| p.matches(&host.name)) {
                let label = format!("MX {}", n + 1);
                mta_sts_failure(mode, &label, "not an MX host the policy names");
                if mode == Mode::Enforce {
                    last = Some(Outcome::Retry {
                        reply: format!(
                            "451 4.7.5 {label}: not named by the recipient domain's MTA-STS policy"
                        ),
                    });
                    continue;
                }
            }
            for ip in &host.addrs {
                let addr = SocketAddr::new(*ip, self.port);
                let label = format!("MX {} at {addr}", n + 1);
                let outcome = match mode {
                    Mode::Enforce => self.attempt(host, addr, &label, true, &env, message).await,
                    Mode::Testing => {
                        // Verified TLS first; where that fails, as usual,
                        // and the failure is reported.
                        let verified = self.attempt(host, addr, &label, true, &env, message).await;
                        match verified {
                            Outcome::Retry { reply } if reply.starts_with("421 4.7.10") => {
                                mta_sts_failure(mode, &label, "no verified TLS");
                                self.attempt(host, addr, &label, false, &env, message).await
                            }
                            other => other,
                        }
                    }
                    Mode::None => self.attempt(host, addr, &label, false, &env, message).await,
                };
                match outcome {
                    // A temporary failure at one host: the next may take it.
                    retry @ Outcome::Retry { .. } => last = Some(retry),
                    done => return done,
                }
            }
        }
        last.unwrap_or_else(|| Outcome::Retry {
            reply: "451 4.4.4 no usable MX host".into(),
        })
    }

    fn destination(&self, rcpt_to: &str) -> Option<String> {
        destination_of(rcpt_to)
    }
}

/// The destination of a recipient: its domain, lowercase, IDNA-encoded.
pub fn destination_of(rcpt_to: &str) -> Option<String> {
    let (_, domain) = rcpt_to.rsplit_once('@')?;
    let domain = domain.trim_start_matches('[').trim_end_matches(']');
    if domain.is_empty() {
        return None;
    }
    let ascii = idna::domain_to_ascii(domain).ok()?;
    Some(ascii.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_lowercase_ascii_domains() {
        assert_eq!(
            destination_of("A@Example.COM").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            destination_of("j@bücher.example").as_deref(),
            Some("xn--bcher-kva.example")
        );
        assert_eq!(destination_of("no-at-sign"), None);
        assert_eq!(destination_of("a@"), None);
    }
}
