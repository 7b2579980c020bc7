//! `[delivery]` (how mail leaves: transport, retries, workers, leases) and
//! `[log]` (how the daemon logs).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::bounce::Suppression;

/// How delivered mail leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// Written as .eml files into `delivery.dir` (development).
    File,
    /// Relayed through `delivery.smarthost`.
    Smarthost,
    /// Sent to the recipient domain's MX.
    Mx,
}

impl TransportKind {
    /// The value as `delivery.transport` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Smarthost => "smarthost",
            Self::Mx => "mx",
        }
    }
}

/// STARTTLS towards the next hop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboundTls {
    /// Never.
    Off,
    /// When offered, without checking the certificate (RFC 7435); in the
    /// clear when not offered or when the handshake fails.
    #[default]
    Opportunistic,
    /// Always, with a certificate valid for the host's name; otherwise the
    /// attempt fails temporarily.
    Required,
}

/// `[delivery]`: transports, retries, workers and leases.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    /// How mail leaves.
    pub transport: TransportKind,
    /// `host:port` of the smarthost.
    #[serde(default)]
    pub smarthost: Option<String>,
    /// Where the file transport writes.
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// Deliveries attempted at once.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// First wait before a deferred delivery is tried again.
    #[serde(default = "default_retry_initial", with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest wait between attempts (the wait doubles up to it).
    #[serde(default = "default_retry_max", with = "humantime_serde")]
    pub retry_max: Duration,
    /// A delivery still failing temporarily this long after acceptance fails.
    #[serde(default = "default_give_up_after", with = "humantime_serde")]
    pub give_up_after: Duration,
    /// Connecting to the next hop and its greeting; a whole transaction may
    /// take ten times this.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// A claimed delivery is this node's until then (long enough for a
    /// whole transaction: more than 11 × `timeout`); see `heartbeat`.
    #[serde(default = "default_lease", with = "humantime_serde")]
    pub lease: Duration,
    /// Nodes sharing a PostgreSQL database say they are alive this often;
    /// a node silent for three heartbeats (killed, frozen, cut off) loses
    /// its claims to the others at once, without waiting out `lease`.
    #[serde(default = "default_heartbeat", with = "humantime_serde")]
    pub heartbeat: Duration,
    /// How often the queue is polled when nothing wakes it.
    #[serde(default = "default_poll", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// STARTTLS to the next hop.
    #[serde(default)]
    pub tls: OutboundTls,
    /// A PEM CA certificate trusted besides the public roots (a private
    /// smarthost's), for `tls = "required"`.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// The port MX hosts are reached on (25; tests use a high one).
    #[serde(default = "default_port")]
    pub port: u16,
    /// DNS servers (`ip:port`) the mx transport asks; empty: those of
    /// `auth.nameservers`, then the system's (/etc/resolv.conf).
    #[serde(default)]
    pub nameservers: Vec<String>,
    /// Attempts at once to one destination (a recipient domain) under the
    /// mx transport, unless `destinations` says otherwise.
    #[serde(default = "default_destination_concurrency")]
    pub destination_concurrency: usize,
    /// Most attempts a minute to one destination; 0: no limit.
    #[serde(default)]
    pub destination_per_minute: u32,
    /// Limits for named destinations (recipient domains, lowercase).
    #[serde(default)]
    pub destinations: HashMap<String, DestinationLimits>,
    /// mx transport: honour recipient domains' MTA-STS policies (RFC 8461).
    #[serde(default = "yes")]
    pub mta_sts: bool,
    /// The port MTA-STS policies are fetched from (443; tests use another).
    #[serde(default = "default_mta_sts_port")]
    pub mta_sts_port: u16,
    /// "No such user or domain" failures (5.1.1, 5.1.2, 5.1.10) that make
    /// a participant undeliverable; 0: never.
    #[serde(default = "one")]
    pub suppress_after_unknown: u32,
    /// "Mailbox disabled" failures (5.2.1) that make a participant
    /// undeliverable; 0: never.
    #[serde(default = "three")]
    pub suppress_after_disabled: u32,
}

/// `[delivery.destinations."example.com"]`: one destination's own limits;
/// a key left out takes the `delivery.destination_*` default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationLimits {
    /// Attempts at once.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Most attempts a minute; 0: no limit.
    #[serde(default)]
    pub per_minute: Option<u32>,
}

/// One destination's limits once the defaults are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Attempts at once.
    pub concurrency: usize,
    /// Most attempts a minute; 0: no limit.
    pub per_minute: u32,
}

impl DeliverySettings {
    /// Which permanent failures count against a participant, and how many.
    pub fn suppression(&self) -> Suppression {
        Suppression {
            unknown_after: self.suppress_after_unknown,
            disabled_after: self.suppress_after_disabled,
        }
    }

    /// The limits of `destination` (a lowercase domain).
    pub fn limits(&self, destination: &str) -> Limits {
        let own = self
            .destinations
            .get(destination)
            .copied()
            .unwrap_or_default();
        Limits {
            concurrency: own.concurrency.unwrap_or(self.destination_concurrency),
            per_minute: own.per_minute.unwrap_or(self.destination_per_minute),
        }
    }
}

/// `[log]`: how the daemon logs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// Text for people, JSON for log collectors.
    #[serde(default = "default_log_format")]
    pub format: LogFormat,
    /// The level (`RUST_LOG` overrides it).
    #[serde(default = "default_log_level")]
    pub level: String,
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line of text per event.
    Text,
    /// One JSON object per event.
    Json,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: default_log_format(),
            level: default_log_level(),
        }
    }
}

fn default_dir() -> PathBuf {
    PathBuf::from("data/outbox")
}
fn default_workers() -> usize {
    16
}
fn yes() -> bool {
    true
}
fn default_mta_sts_port() -> u16 {
    443
}
fn one() -> u32 {
    1
}
fn three() -> u32 {
    3
}
fn default_port() -> u16 {
    25
}
fn default_destination_concurrency() -> usize {
    4
}
fn default_heartbeat() -> Duration {
    Duration::from_secs(10)
}
fn default_retry_initial() -> Duration {
    Duration::from_secs(60)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(3600)
}
fn default_give_up_after() -> Duration {
    Duration::from_secs(5 * 86_400)
}
fn default_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_lease() -> Duration {
    Duration::from_secs(900)
}
fn default_poll() -> Duration {
    Duration::from_secs(5)
}
fn default_log_format() -> LogFormat {
    LogFormat::Text
}
fn default_log_level() -> String {
    "info".into()
}
