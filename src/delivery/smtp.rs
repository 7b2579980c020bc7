//! SMTP transports via lettre: a fixed smarthost, or the recipient domain's MX
//! hosts. Plain SMTP for now (STARTTLS comes with the hardening work).

use std::time::Duration;

use async_trait::async_trait;
use hickory_resolver::TokioResolver;
use lettre::address::Envelope;
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use lettre::transport::smtp::PoolConfig;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{DeliveryEnvelope, Outcome, Transport, TransportError};

/// MX hosts tried per attempt, best preference first.
const MAX_MX_HOSTS: usize = 5;
const SMTP_PORT: u16 = 25;

type Smtp = AsyncSmtpTransport<Tokio1Executor>;

fn build(host: &str, port: u16, hostname: &str, timeout: Duration, pool: Option<u32>) -> Smtp {
    let builder = Smtp::builder_dangerous(host)
        .port(port)
        .hello_name(ClientId::Domain(hostname.to_string()))
        .timeout(Some(timeout));
    match pool {
        Some(size) => builder
            .pool_config(PoolConfig::new().max_size(size))
            .build(),
        None => builder.build(),
    }
}

/// lettre's envelope; an address it cannot parse is a permanent failure.
fn lettre_envelope(env: &DeliveryEnvelope<'_>) -> Result<Envelope, Outcome> {
    let bad = |what: &str| Outcome::Failed {
        reply: format!("553 5.1.3 invalid {what} address"),
    };
    let from = if env.mail_from.is_empty() {
        None
    } else {
        Some(
            env.mail_from
                .parse::<Address>()
                .map_err(|_| bad("sender"))?,
        )
    };
    let to = env
        .rcpt_to
        .parse::<Address>()
        .map_err(|_| bad("recipient"))?;
    Envelope::new(from, vec![to]).map_err(|_| bad("recipient"))
}

/// lettre ends DATA with `\r\n.\r\n` whatever the message ends with, so the
/// message's own final CRLF is taken off to keep the bytes identical.
fn for_lettre(message: &[u8]) -> &[u8] {
    message.strip_suffix(b"\r\n").unwrap_or(message)
}

fn reply_text(r: &Response) -> String {
    format!("{} {}", r.code(), r.message().collect::<Vec<_>>().join(" "))
}

/// Map lettre's result to an outcome: 5xx and client-side refusals (e.g. 8-bit
/// content to a server without 8BITMIME) are permanent; the rest is retried.
fn classify(result: Result<Response, lettre::transport::smtp::Error>) -> Outcome {
    match result {
        Ok(r) => Outcome::Delivered {
            reply: reply_text(&r),
        },
        Err(e) => {
            let detail = std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_default();
            let reply = match e.status() {
                Some(code) => format!("{code} {detail}"),
                None => e.to_string(),
            };
            if e.is_permanent() {
                Outcome::Failed { reply }
            } else if e.is_client() {
                Outcome::Failed {
                    reply: format!("554 5.6.0 {e}"),
                }
            } else {
                Outcome::Retry { reply }
            }
        }
    }
}

/// Every delivery goes to one relay host (`delivery.smarthost`), over pooled connections.
pub struct SmarthostTransport {
    smtp: Smtp,
}

impl SmarthostTransport {
    pub fn new(target: &str, hostname: &str, timeout: Duration) -> Result<Self, TransportError> {
        let bad = || TransportError::BadSmarthost(target.to_string());
        let (host, port) = target.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            smtp: build(host, port, hostname, timeout, Some(16)),
        })
    }
}

#[async_trait]
impl Transport for SmarthostTransport {
    async fn send(&self, envelope: &DeliveryEnvelope<'_>, message: &[u8]) -> Outcome {
        match lettre_envelope(envelope) {
            Ok(env) => classify(self.smtp.send_raw(&env, for_lettre(message)).await),
            Err(outcome) => outcome,
        }
    }
}

/// Direct delivery to the recipient domain's MX hosts (RFC 5321 section 5).
pub struct MxTransport {
    resolver: TokioResolver,
    hostname: String,
    timeout: Duration,
}

impl MxTransport {
    pub fn new(hostname: &str, timeout: Duration) -> Result<Self, TransportError> {
        let resolver = TokioResolver::builder_tokio()
            .map_err(|e| TransportError::Resolver(e.to_string()))?
            .build();
        Ok(Self {
            resolver,
            hostname: hostname.to_string(),
            timeout,
        })
    }

    /// MX hosts by preference; the domain itself when it has no MX (implicit MX).
    async fn hosts(&self, domain: &str) -> Result<Vec<String>, Outcome> {
        match self.resolver.mx_lookup(domain).await {
            Ok(lookup) => {
                let mut records: Vec<_> = lookup
                    .iter()
                    .map(|mx| (mx.preference(), mx.exchange().to_utf8()))
                    .collect();
                records.sort();
                if records.len() == 1 && (records[0].1 == "." || records[0].1.is_empty()) {
                    return Err(Outcome::Failed {
                        reply: format!("556 5.1.10 {domain} accepts no mail (null MX)"),
                    });
                }
                Ok(records
                    .into_iter()
                    .map(|(_, host)| host.trim_end_matches('.').to_string())
                    .take(MAX_MX_HOSTS)
                    .collect())
            }
            Err(e) if e.is_no_records_found() => Ok(vec![domain.to_string()]),
            Err(e) => Err(Outcome::Retry {
                reply: format!("451 4.4.3 MX lookup for {domain} failed: {e}"),
            }),
        }
    }
}

#[async_trait]
impl Transport for MxTransport {
    async fn send(&self, envelope: &DeliveryEnvelope<'_>, message: &[u8]) -> Outcome {
        let env = match lettre_envelope(envelope) {
            Ok(env) => env,
            Err(outcome) => return outcome,
        };
        let domain = envelope
            .rcpt_to
            .rsplit_once('@')
            .map(|(_, d)| d)
            .unwrap_or_default();
        let hosts = match self.hosts(domain).await {
            Ok(hosts) => hosts,
            Err(outcome) => return outcome,
        };
        let mut last = Outcome::Retry {
            reply: format!("451 4.4.4 no usable MX host for {domain}"),
        };
        for host in hosts {
            let smtp = build(&host, SMTP_PORT, &self.hostname, self.timeout, None);
            match classify(smtp.send_raw(&env, for_lettre(message)).await) {
                // A temporary failure at one MX: the next one may take it.
                retry @ Outcome::Retry { .. } => last = retry,
                final_outcome => return final_outcome,
            }
        }
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// lettre's pool lives on the Tokio runtime.
    #[tokio::test]
    async fn smarthost_target_must_be_host_and_port() {
        assert!(SmarthostTransport::new("127.0.0.1:2526", "h", Duration::from_secs(1)).is_ok());
        assert!(SmarthostTransport::new("[::1]:25", "h", Duration::from_secs(1)).is_ok());
        assert!(SmarthostTransport::new("nohost", "h", Duration::from_secs(1)).is_err());
        assert!(SmarthostTransport::new("h:notaport", "h", Duration::from_secs(1)).is_err());
    }

    #[test]
    fn null_sender_and_bad_addresses() {
        let env = DeliveryEnvelope {
            delivery_id: "d",
            mail_from: "",
            rcpt_to: "a@example.com",
        };
        assert!(lettre_envelope(&env).unwrap().from().is_none());
        let bad = DeliveryEnvelope {
            rcpt_to: "not an address",
            ..env
        };
        assert!(matches!(lettre_envelope(&bad), Err(Outcome::Failed { .. })));
    }
}
