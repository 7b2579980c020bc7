//! Delivery: hands one masked message to one real address through the
//! configured transport and says what became of it. Transports never decide
//! retries; they classify, and the queue acts on the classification alone.

pub mod arc;
mod client;
pub mod dkim;
mod file;
mod mta_sts;
mod mx;
mod pool;
mod smtp;
mod tls;

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{DeliverySettings, TransportKind};

pub use file::FileTransport;
pub use mx::{destination_of, MxHost, MxTransport};
use smtp::Connector;
pub use smtp::SmarthostTransport;

/// The result of one attempt. `reply` is the next hop's answer (or ours,
/// for local failures); it may contain the real address and must be
/// redacted before it is stored or logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The next hop took it.
    Delivered {
        /// The next hop's answer.
        reply: String,
    },
    /// 4xx, network trouble, timeouts: try again later.
    Retry {
        /// The next hop's answer, or what went wrong.
        reply: String,
    },
    /// 5xx: the next hop will never take it.
    Failed {
        /// The next hop's answer.
        reply: String,
    },
}

/// One delivery's envelope. `mail_from` empty means the null sender.
#[derive(Debug, Clone)]
pub struct DeliveryEnvelope<'a> {
    /// The delivery being attempted.
    pub delivery_id: &'a str,
    /// The envelope sender (the delivery's bounce address).
    pub mail_from: &'a str,
    /// The real address delivered to.
    pub rcpt_to: &'a str,
}

/// A way for mail to leave: the file folder, a smarthost or direct MX.
/// The queue runner calls `send` for each attempt; `delivery::build` picks
/// the one the configuration names.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Attempt one delivery of `message` (already masked and signed).
    async fn send(&self, envelope: &DeliveryEnvelope<'_>, message: &[u8]) -> Outcome;

    /// The destination a delivery to `rcpt_to` counts against for
    /// per-destination limits and backoff; `None` when every delivery
    /// leaves through one next hop (a smarthost, the folder).
    fn destination(&self, _rcpt_to: &str) -> Option<String> {
        None
    }
}

/// Why a transport could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// `delivery.smarthost` is not `host:port`.
    #[error("delivery.smarthost `{0}` is not host:port")]
    BadSmarthost(String),
    /// The file transport's folder could not be made (the folder, why).
    #[error("cannot create delivery.dir {0}: {1}")]
    Dir(String, std::io::Error),
    /// The DNS resolver for MX delivery could not be set up.
    #[error("cannot set up DNS resolution for mx delivery: {0}")]
    Resolver(String),
    /// `delivery.tls_ca_file` could not be read (the file, why).
    #[error("delivery.tls_ca_file {0}: {1}")]
    TlsCa(String, String),
}

/// Build the transport `delivery.transport` names; the mx transport asks
/// `delivery.nameservers`, else `fallback_nameservers` (`auth.nameservers`),
/// else the system's resolvers.
pub fn from_settings(
    settings: &DeliverySettings,
    hostname: &str,
    fallback_nameservers: &[String],
) -> Result<Arc<dyn Transport>, TransportError> {
    let ca = match &settings.tls_ca_file {
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| TransportError::TlsCa(path.display().to_string(), e.to_string()))?,
        ),
        None => None,
    };
    let connector = || -> Result<Connector, TransportError> {
        Connector::new(hostname, settings.timeout, settings.tls, ca.as_deref()).map_err(|e| {
            let path = settings
                .tls_ca_file
                .as_ref()
                .map(|p| p.display().to_string());
            TransportError::TlsCa(path.unwrap_or_default(), e)
        })
    };
    Ok(match settings.transport {
        TransportKind::File => Arc::new(FileTransport::new(&settings.dir)?),
        TransportKind::Smarthost => {
            let target = settings.smarthost.as_deref().unwrap_or_default();
            let connections = u32::try_from(settings.workers).unwrap_or(u32::MAX);
            Arc::new(SmarthostTransport::new(target, connector()?, connections)?)
        }
        TransportKind::Mx => {
            let nameservers = if settings.nameservers.is_empty() {
                fallback_nameservers
            } else {
                &settings.nameservers
            };
            let per_host = settings.destination_concurrency;
            let mx = MxTransport::new(connector()?, nameservers, settings.port, per_host)?;
            Arc::new(match settings.mta_sts {
                true => mx.with_mta_sts(settings.mta_sts_port, ca),
                false => mx,
            })
        }
    })
}
