//! SMTP delivery over `client::Client` on sockets of our own, with
//! TCP_NODELAY (a message and its final dot must not wait on a delayed
//! ACK): the `Connector` that opens sessions and runs transactions on kept
//! connections, and the smarthost transport. STARTTLS as `delivery.tls`
//! says: opportunistic (unverified, falling back to the clear), required
//! (verified, else a temporary failure), or off.

use std::time::Duration;

use async_trait::async_trait;
use lettre::Address;
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio_rustls::TlsConnector;

use super::client::{Client, ClientError};
use super::pool::{Pool, CHECK_IDLE_AFTER};
use super::{tls, DeliveryEnvelope, Outcome, Transport, TransportError};
use crate::config::OutboundTls;
use crate::smtp::Reply;

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

    /// A session with `host` (its name, for TLS) at `addr` (`label` in
    /// replies), under TLS as `policy` asks.
    async fn connect(
        &self,
        host: &str,
        addr: impl ToSocketAddrs + Copy,
        label: &str,
        policy: OutboundTls,
    ) -> Result<Client, Outcome> {
        let client = self.connect_plain(addr, label).await?;
        let required = policy == OutboundTls::Required;
        if policy == OutboundTls::Off || (!client.offers_starttls() && !required) {
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
                        Ok(Err(ClientError::Io(e))) => {
                            format!("TLS failed: {}", tls::describe(&e))
                        }
                        Ok(Err(e)) => format!("TLS failed: {e}"),
                        Err(_) => "TLS handshake timed out".to_string(),
                    }
                }
            }
        };
        if required {
            let why = if self.policy == OutboundTls::Required {
                "delivery.tls = required"
            } else {
                "the recipient domain's MTA-STS policy"
            };
            return Err(Outcome::Retry {
                reply: format!("421 4.7.10 {label}: {failure} ({why})"),
            });
        }
        tracing::info!(next_hop = label, reason = %failure, "STARTTLS failed; delivering in the clear");
        self.connect_plain(addr, label).await
    }

    async fn connect_plain(
        &self,
        addr: impl ToSocketAddrs,
        label: &str,
    ) -> Result<Client, Outcome> {
        let retry = |what: String| Outcome::Retry {
            reply: format!("421 4.4.1 {label}: {what}"),
        };
        let stream = match tokio::time::timeout(self.timeout, TcpStream::connect(addr)).await {
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

    /// One transaction with the next hop `hop` (`host` at `addr`, `label`
    /// in replies), over a kept connection when the pool has one that
    /// still answers, else a new one; the connection is kept afterwards
    /// when it can carry another. A kept connection found closed before
    /// the transaction began is replaced at once: the attempt goes on over
    /// a new connection and counts once.
    pub(super) async fn deliver(
        &self,
        pool: &Pool,
        hop: &Hop<'_, impl ToSocketAddrs + Copy>,
        env: &Envelope<'_>,
        message: &[u8],
    ) -> Outcome {
        loop {
            let (mut client, kept) = match pool.take(hop.key) {
                Some(mut kept) => {
                    if kept.idle_for >= CHECK_IDLE_AFTER && !kept.client.noop().await {
                        continue;
                    }
                    (kept.client, true)
                }
                None => match self
                    .connect(
                        hop.host,
                        hop.addr,
                        hop.label,
                        hop.tls.unwrap_or(self.policy),
                    )
                    .await
                {
                    Ok(client) => (client, false),
                    Err(outcome) => return outcome,
                },
            };
            let transaction = client.send(env.from, env.to, message);
            let result = match tokio::time::timeout(self.timeout * 10, transaction).await {
                Ok(result) => result,
                Err(_) => {
                    return Outcome::Retry {
                        reply: format!("421 4.4.2 {}: timed out", hop.label),
                    }
                }
            };
            if kept && matches!(result, Err(ClientError::Stale(_))) {
                tracing::debug!(
                    next_hop = hop.label,
                    "kept connection was closed; reconnecting"
                );
                continue;
            }
            pool.put(hop.key, client);
            return classify(result);
        }
    }
}

/// A next hop: where to connect and what to call it.
pub(super) struct Hop<'a, A> {
    /// The pool's key: one per address and name.
    pub key: &'a str,
    /// The host's name, for TLS.
    pub host: &'a str,
    /// Where to connect.
    pub addr: A,
    /// How replies and logs name it.
    pub label: &'a str,
    /// TLS as this hop needs it, when not as `delivery.tls` says (MTA-STS).
    pub tls: Option<OutboundTls>,
}

/// A delivery's envelope, its addresses checked.
pub struct Envelope<'a> {
    pub from: &'a str,
    pub to: &'a str,
}

/// An address the next hop could not parse is a permanent failure; checked
/// with lettre's parser, so no command can carry a line break.
pub(super) fn checked_envelope<'a>(env: &DeliveryEnvelope<'a>) -> Result<Envelope<'a>, Outcome> {
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
        Err(e @ ClientError::TooBig(..)) => Outcome::Failed {
            reply: format!("552 5.3.4 {e}"),
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
    label: String,
    connector: Connector,
    pool: Pool,
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
            label: format!("{host}:{port}"),
            connector,
            pool: Pool::new(connections as usize),
        })
    }
}

#[async_trait]
impl Transport for SmarthostTransport {
    async fn send(&self, envelope: &DeliveryEnvelope<'_>, message: &[u8]) -> Outcome {
        let env = match checked_envelope(envelope) {
            Ok(env) => env,
            Err(outcome) => return outcome,
        };
        let hop = Hop {
            key: &self.label,
            host: &self.host,
            addr: (self.host.as_str(), self.port),
            label: &self.label,
            tls: None,
        };
        self.connector
            .deliver(&self.pool, &hop, &env, message)
            .await
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
