//! SMTP transports: a fixed smarthost, or the recipient domain's MX hosts.
//! lettre speaks the protocol; the sockets are ours so they can have
//! TCP_NODELAY (lettre writes the message and its final `.` separately, and
//! with Nagle's algorithm every message waited for a delayed ACK, ~40 ms).
//! STARTTLS as `delivery.tls` says: opportunistic (unverified, falling back
//! to the clear), required (verified, else a temporary failure), or off.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hickory_resolver::TokioResolver;
use lettre::address::Envelope;
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use lettre::Address;
use tokio::net::TcpStream;

use super::{DeliveryEnvelope, Outcome, Transport, TransportError};
use crate::config::OutboundTls;

/// MX hosts tried per attempt, best preference first.
const MAX_MX_HOSTS: usize = 5;
const SMTP_PORT: u16 = 25;
/// A pooled connection idle longer than this is checked (NOOP) before use.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(10);

/// Opens SMTP connections and runs one transaction on them. Connecting and
/// the greeting are bounded by `timeout`; a whole transaction by ten times
/// that (RFC 5321 4.5.3.2 allows 10 minutes for the end of DATA alone).
pub struct Connector {
    hello: ClientId,
    timeout: Duration,
    tls: OutboundTls,
    /// A CA certificate (PEM) trusted besides the public roots.
    ca_pem: Option<Vec<u8>>,
}

impl Connector {
    pub fn new(
        hostname: &str,
        timeout: Duration,
        tls: OutboundTls,
        ca_pem: Option<Vec<u8>>,
    ) -> Self {
        Self {
            hello: ClientId::Domain(hostname.to_string()),
            timeout,
            tls,
            ca_pem,
        }
    }

    /// A session with `host`, under TLS as the policy asks.
    async fn connect(&self, host: &str, port: u16) -> Result<AsyncSmtpConnection, Outcome> {
        let mut conn = self.connect_plain(host, port).await?;
        let required = self.tls == OutboundTls::Required;
        if self.tls == OutboundTls::Off || (!conn.can_starttls() && !required) {
            return Ok(conn);
        }
        let failure = if !conn.can_starttls() {
            conn.abort().await;
            "STARTTLS not offered".to_string()
        } else {
            let upgrade = async {
                let params = self.tls_parameters(host)?;
                conn.starttls(params, &self.hello).await
            };
            // A failed upgrade leaves lettre's connection without a stream:
            // it is dropped, never used again (not even for QUIT).
            match tokio::time::timeout(self.timeout, upgrade).await {
                Ok(Ok(())) => return Ok(conn),
                Ok(Err(e)) => format!("TLS failed: {e}"),
                Err(_) => "TLS handshake timed out".to_string(),
            }
        };
        if required {
            return Err(Outcome::Retry {
                reply: format!("421 4.7.10 {host}:{port}: {failure} (delivery.tls = required)"),
            });
        }
        tracing::info!(host, port, reason = %failure, "STARTTLS failed; delivering in the clear");
        self.connect_plain(host, port).await
    }

    fn tls_parameters(&self, host: &str) -> Result<TlsParameters, lettre::transport::smtp::Error> {
        let mut builder = TlsParameters::builder(host.to_string())
            .dangerous_accept_invalid_certs(self.tls == OutboundTls::Opportunistic);
        if let Some(pem) = &self.ca_pem {
            builder = builder.add_root_certificate(Certificate::from_pem(pem)?);
        }
        builder.build_rustls()
    }

    async fn connect_plain(&self, host: &str, port: u16) -> Result<AsyncSmtpConnection, Outcome> {
        let retry = |what: String| Outcome::Retry {
            reply: format!("421 4.4.1 {host}:{port}: {what}"),
        };
        let stream =
            match tokio::time::timeout(self.timeout, TcpStream::connect((host, port))).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(retry(format!("cannot connect: {e}"))),
                Err(_) => return Err(retry("connect timed out".into())),
            };
        let _ = stream.set_nodelay(true);
        match tokio::time::timeout(
            self.timeout,
            AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello),
        )
        .await
        {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(classify(Err(e))),
            Err(_) => Err(retry("no greeting in time".into())),
        }
    }

    async fn send(
        &self,
        conn: &mut AsyncSmtpConnection,
        env: &Envelope,
        message: &[u8],
    ) -> Outcome {
        match tokio::time::timeout(self.timeout * 10, conn.send(env, for_lettre(message))).await {
            Ok(result) => classify(result),
            Err(_) => {
                conn.abort().await;
                Outcome::Retry {
                    reply: "421 4.4.2 next hop timed out".into(),
                }
            }
        }
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

/// Every delivery goes to one relay host (`delivery.smarthost`), over a pool
/// of kept-open connections.
pub struct SmarthostTransport {
    host: String,
    port: u16,
    connector: Connector,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    max_idle: usize,
}

impl SmarthostTransport {
    /// `connections`: how many idle connections to keep (one per worker).
    pub fn new(
        target: &str,
        connector: Connector,
        connections: u32,
    ) -> Result<Self, TransportError> {
        let bad = || TransportError::BadSmarthost(target.to_string());
        let (host, port) = target.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_string(),
            port,
            connector,
            idle: Mutex::new(Vec::new()),
            max_idle: connections.max(1) as usize,
        })
    }

    /// A pooled connection that still answers, or a new one.
    async fn connection(&self) -> Result<AsyncSmtpConnection, Outcome> {
        loop {
            let pooled = self.idle.lock().expect("pool lock").pop();
            match pooled {
                Some((conn, since)) if since.elapsed() < CHECK_IDLE_AFTER => return Ok(conn),
                Some((mut conn, _)) => {
                    if conn.test_connected().await {
                        return Ok(conn);
                    }
                }
                None => return self.connector.connect(&self.host, self.port).await,
            }
        }
    }
}

#[async_trait]
impl Transport for SmarthostTransport {
    async fn send(&self, envelope: &DeliveryEnvelope<'_>, message: &[u8]) -> Outcome {
        let env = match lettre_envelope(envelope) {
            Ok(env) => env,
            Err(outcome) => return outcome,
        };
        let mut conn = match self.connection().await {
            Ok(c) => c,
            Err(outcome) => return outcome,
        };
        let outcome = self.connector.send(&mut conn, &env, message).await;
        if !conn.has_broken() {
            let mut idle = self.idle.lock().expect("pool lock");
            if idle.len() < self.max_idle {
                idle.push((conn, Instant::now()));
            }
        }
        outcome
    }
}

/// Direct delivery to the recipient domain's MX hosts (RFC 5321 section 5).
pub struct MxTransport {
    resolver: TokioResolver,
    connector: Connector,
}

impl MxTransport {
    pub fn new(connector: Connector) -> Result<Self, TransportError> {
        let resolver = TokioResolver::builder_tokio()
            .map_err(|e| TransportError::Resolver(e.to_string()))?
            .build();
        Ok(Self {
            resolver,
            connector,
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
            let outcome = match self.connector.connect(&host, SMTP_PORT).await {
                Ok(mut conn) => {
                    let outcome = self.connector.send(&mut conn, &env, message).await;
                    if !conn.has_broken() {
                        let _ = conn.quit().await;
                    }
                    outcome
                }
                Err(outcome) => outcome,
            };
            match outcome {
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

    #[test]
    fn smarthost_target_must_be_host_and_port() {
        let smarthost = |target: &str| {
            let connector = Connector::new("h", Duration::from_secs(1), OutboundTls::Off, None);
            SmarthostTransport::new(target, connector, 4)
        };
        assert!(smarthost("127.0.0.1:2526").is_ok());
        assert!(smarthost("[::1]:25").is_ok());
        assert!(smarthost("nohost").is_err());
        assert!(smarthost("h:notaport").is_err());
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
