//! SMTP transports: a fixed smarthost, or the recipient domain's MX hosts,
//! over `client::Client` on sockets of our own, with TCP_NODELAY (a message
//! and its final dot must not wait on a delayed ACK). STARTTLS as
//! `delivery.tls` says: opportunistic (unverified, falling back to the
//! clear), required (verified, else a temporary failure), or off.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hickory_resolver::TokioResolver;
use lettre::Address;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::client::{Client, ClientError};
use super::{tls, DeliveryEnvelope, Outcome, Transport, TransportError};
use crate::config::OutboundTls;
use crate::smtp::Reply;

/// MX hosts tried per attempt, best preference first.
const MAX_MX_HOSTS: usize = 5;
const SMTP_PORT: u16 = 25;
/// A pooled connection idle longer than this is checked (NOOP) before use.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(10);

/// Opens SMTP connections and runs one transaction on them. Connecting and
/// the greeting are bounded by `timeout`; a whole transaction by ten times
/// that (RFC 5321 4.5.3.2 allows 10 minutes for the end of DATA alone).
pub struct Connector {
    hello: String,
    timeout: Duration,
    policy: OutboundTls,
    /// For `required`: the public roots and `delivery.tls_ca_file`.
    verifying: TlsConnector,
    /// For `opportunistic`.
    unverified: TlsConnector,
}

impl Connector {
    /// `ca_pem`: CA certificates (PEM) trusted besides the public roots.
    pub fn new(
        hostname: &str,
        timeout: Duration,
        policy: OutboundTls,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, String> {
        Ok(Self {
            hello: hostname.to_string(),
            timeout,
            policy,
            verifying: tls::verifying(ca_pem)?,
            unverified: tls::unverified()?,
        })
    }

    /// A session with `host`, under TLS as the policy asks.
    async fn connect(&self, host: &str, port: u16) -> Result<Client, Outcome> {
        let client = self.connect_plain(host, port).await?;
        let required = self.policy == OutboundTls::Required;
        if self.policy == OutboundTls::Off || (!client.offers_starttls() && !required) {
            return Ok(client);
        }
        let failure = if !client.offers_starttls() {
            client.quit().await;
            "STARTTLS not offered".to_string()
        } else {
            let connector = if required {
                &self.verifying
            } else {
                &self.unverified
            };
            match tls::server_name(host) {
                Err(e) => {
                    client.quit().await;
                    format!("TLS failed: {e}")
                }
                Ok(name) => {
                    // A failed upgrade takes the connection with it.
                    let upgrade = client.starttls(connector, name, &self.hello);
                    match tokio::time::timeout(self.timeout, upgrade).await {
                        Ok(Ok(secure)) => return Ok(secure),
                        Ok(Err(e)) => format!("TLS failed: {e}"),
                        Err(_) => "TLS handshake timed out".to_string(),
                    }
                }
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

    async fn connect_plain(&self, host: &str, port: u16) -> Result<Client, Outcome> {
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
        match tokio::time::timeout(self.timeout, Client::start(stream, &self.hello)).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(classify(Err(e))),
            Err(_) => Err(retry("no greeting in time".into())),
        }
    }

    async fn send(&self, client: &mut Client, env: &Envelope<'_>, message: &[u8]) -> Outcome {
        let transaction = client.send(env.from, env.to, message);
        match tokio::time::timeout(self.timeout * 10, transaction).await {
            Ok(result) => classify(result),
            Err(_) => Outcome::Retry {
                reply: "421 4.4.2 next hop timed out".into(),
            },
        }
    }
}

/// A delivery's envelope, its addresses checked.
struct Envelope<'a> {
    from: &'a str,
    to: &'a str,
}

/// An address the next hop could not parse is a permanent failure; checked
/// with lettre's parser, so no command can carry a line break.
fn checked_envelope<'a>(env: &DeliveryEnvelope<'a>) -> Result<Envelope<'a>, Outcome> {
    let bad = |what: &str| Outcome::Failed {
        reply: format!("553 5.1.3 invalid {what} address"),
    };
    if !env.mail_from.is_empty() && env.mail_from.parse::<Address>().is_err() {
        return Err(bad("sender"));
    }
    if env.rcpt_to.parse::<Address>().is_err() {
        return Err(bad("recipient"));
    }
    Ok(Envelope {
        from: env.mail_from,
        to: env.rcpt_to,
    })
}

/// Map a transaction's result to an outcome: 5xx and refusals on our side
/// (8-bit content to a server without 8BITMIME) are permanent; the rest
/// (4xx, network trouble) is retried.
fn classify(result: Result<Reply, ClientError>) -> Outcome {
    match result {
        Ok(r) => Outcome::Delivered {
            reply: r.one_line(),
        },
        Err(ClientError::Refused(r)) if r.code >= 500 => Outcome::Failed {
            reply: r.one_line(),
        },
        Err(ClientError::Refused(r)) => Outcome::Retry {
            reply: r.one_line(),
        },
        Err(ClientError::Unsupported(reason)) => Outcome::Failed {
            reply: reason.to_string(),
        },
        Err(e) => Outcome::Retry {
            reply: format!("421 4.4.2 next hop: {e}"),
        },
    }
}

/// Every delivery goes to one relay host (`delivery.smarthost`), over a pool
/// of kept-open connections.
pub struct SmarthostTransport {
    host: String,
    port: u16,
    connector: Connector,
    idle: Mutex<Vec<(Client, Instant)>>,
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
    async fn connection(&self) -> Result<Client, Outcome> {
        loop {
            let pooled = self.idle.lock().expect("pool lock").pop();
            match pooled {
                Some((conn, since)) if since.elapsed() < CHECK_IDLE_AFTER => return Ok(conn),
                Some((mut conn, _)) => {
                    if conn.noop().await {
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
        let env = match checked_envelope(envelope) {
            Ok(env) => env,
            Err(outcome) => return outcome,
        };
        let mut conn = match self.connection().await {
            Ok(c) => c,
            Err(outcome) => return outcome,
        };
        let outcome = self.connector.send(&mut conn, &env, message).await;
        if !conn.is_broken() {
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
    /// A transport that connects where `connector` says.
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
        let env = match checked_envelope(envelope) {
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
                    if !conn.is_broken() {
                        conn.quit().await;
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
            let connector =
                Connector::new("h", Duration::from_secs(1), OutboundTls::Off, None).unwrap();
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
        assert_eq!(checked_envelope(&env).unwrap().from, "");
        let bad = DeliveryEnvelope {
            rcpt_to: "not an address",
            ..env.clone()
        };
        assert!(matches!(
            checked_envelope(&bad),
            Err(Outcome::Failed { .. })
        ));
        let injected = DeliveryEnvelope {
            mail_from: "a@example.com>\r\nRCPT TO:<b@example.com",
            ..env
        };
        assert!(matches!(
            checked_envelope(&injected),
            Err(Outcome::Failed { .. })
        ));
    }
}
