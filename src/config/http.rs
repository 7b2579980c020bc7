//! Configuration of the HTTP side: the integrators' API (`[api]`) and the
//! stores' webhooks (`[webhook]`).

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::Secret;

/// Sending stores' webhook events (the URL is a store setting, via the API).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Events sent at once.
    pub workers: usize,
    /// One request, connecting included.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// First wait before a failed request is sent again.
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest wait between attempts (the wait doubles up to it).
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// An event still failing this long after it was written fails.
    #[serde(with = "humantime_serde")]
    pub give_up_after: Duration,
    /// A claimed event is this node's until then; must exceed `timeout`.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// How often the outbox is read for due events.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Allow webhook URLs on loopback, private and link-local addresses.
    /// Off by default: a store's token must not reach the relay's network.
    pub allow_private_networks: bool,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            workers: 4,
            timeout: Duration::from_secs(10),
            retry_initial: Duration::from_secs(30),
            retry_max: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(86_400),
            lease: Duration::from_secs(120),
            poll_interval: Duration::from_secs(1),
            allow_private_networks: false,
        }
    }
}

/// The integrators' HTTP API. Off unless `listen` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Where the HTTP API and the console listen; none: off.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// A bearer token allowed for every store ...
    #[serde(default)]
    pub token: Option<Secret>,
    /// ... or read from this file.
    #[serde(default)]
    pub token_file: Option<std::path::PathBuf>,
    /// More tokens, each optionally limited to one store.
    #[serde(default)]
    pub tokens: Vec<ApiToken>,
    /// Wrong or missing tokens and refused console logins one client
    /// address may make per minute before it gets `429` for the rest of
    /// that minute; 0: no limit.
    #[serde(default = "default_max_auth_failures")]
    pub max_auth_failures_per_minute: u32,
}

fn default_max_auth_failures() -> u32 {
    10
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            listen: None,
            token: None,
            token_file: None,
            tokens: Vec::new(),
            max_auth_failures_per_minute: default_max_auth_failures(),
        }
    }
}

/// A bearer token of the API (and a console login).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    /// The token (16 characters or more).
    pub token: Secret,
    /// The one store it may act for; none: every store.
    #[serde(default)]
    pub store: Option<String>,
}

/// Bearer tokens are secrets: shorter ones are refused.
pub const MIN_TOKEN_LEN: usize = 16;

impl ApiSettings {
    /// Every configured token with the store it is limited to, if any.
    pub fn all_tokens(&self) -> Vec<ApiToken> {
        let single = self.token.iter().map(|t| ApiToken {
            token: t.clone(),
            store: None,
        });
        single.chain(self.tokens.iter().cloned()).collect()
    }
}
