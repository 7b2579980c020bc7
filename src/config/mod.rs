//! Configuration: a TOML file (default `config/default.toml`) with every key
//! overridable as `CT_RELAY__SECTION__KEY`. Unknown keys are errors, so a typo
//! never silently falls back to a default.

mod check;
mod delivery;
mod http;
mod mail_auth;
mod policy;
mod rules;
mod secret;
mod storage;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use check::{check_config, misspelled_overrides, CheckReport, Finding, Severity};
pub use delivery::*;
pub use http::*;
pub use mail_auth::*;
pub use policy::*;
pub use rules::Problem;
pub use secret::{read_secret_file, Secret};
pub use storage::StorageSettings;

use crate::alias::{AliasKey, Aliaser, Ttl};
use crate::delivery::arc::ArcSealing;
use crate::delivery::dkim::DkimSigning;

/// The configuration file commands read unless given `--config`.
pub const DEFAULT_CONFIG: &str = "config/default.toml";
/// Environment variables `CT_RELAY__SECTION__KEY` override the file.
pub const ENV_PREFIX: &str = "CT_RELAY";
/// Keys starting with this are the shipped development key.
pub const DEV_KEY_MARKER: &str = "DEVELOPMENT-ONLY";

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Display leaves the cause to the error chain (`{:#}` prints it once).
    #[error("cannot load configuration {path} (with CT_RELAY__* overrides)")]
    Load {
        /// The file.
        path: String,
        /// What the reader said.
        #[source]
        source: config::ConfigError,
    },
    /// A value that breaks a rule (the message names the key).
    #[error("invalid configuration value: {0}")]
    Invalid(String),
}

/// The whole configuration: the TOML file with `CT_RELAY__SECTION__KEY`
/// environment overrides, each section a struct below. `Settings::load`
/// reads and checks it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `[smtp]`: the listener.
    pub smtp: SmtpSettings,
    /// `[alias]`: the alias domain, key and lifetime.
    pub alias: AliasSettings,
    /// `[storage]`: the database and what is kept.
    pub storage: StorageSettings,
    /// `[delivery]`: how mail leaves.
    pub delivery: DeliverySettings,
    /// `[api]`: the HTTP listener and its tokens.
    #[serde(default)]
    pub api: ApiSettings,
    /// `[webhook]`: sending stores' events.
    #[serde(default)]
    pub webhook: WebhookSettings,
    /// Sign outgoing mail; off when absent.
    #[serde(default)]
    pub dkim: Option<DkimSettings>,
    /// `[auth]`: SPF, DKIM and DMARC of incoming mail.
    #[serde(default)]
    pub auth: AuthSettings,
    /// `[scan]`: rspamd.
    #[serde(default)]
    pub scan: ScanSettings,
    /// `[policy]`: rate limits.
    #[serde(default)]
    pub policy: PolicySettings,
    /// `[log]`: format and level.
    #[serde(default)]
    pub log: LogSettings,
}

/// `[smtp]`: the SMTP listener and its limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The name in the greeting, EHLO and Received fields.
    pub hostname: String,
    /// Largest message accepted, in bytes (advertised as SIZE).
    #[serde(default = "default_max_message_size")]
    pub max_message_size: usize,
    /// Recipients per transaction (`452 4.5.3` past it).
    #[serde(default = "default_max_recipients")]
    pub max_recipients: usize,
    /// 5xx replies a session may earn before it is closed with 421 4.7.0.
    #[serde(default = "default_max_errors")]
    pub max_errors: u32,
    /// A session idle this long gets `421 4.4.2`.
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// How long shutdown waits for sessions and deliveries in flight.
    #[serde(default = "default_shutdown_grace", with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Sessions at once: in all (more wait to be accepted), and from one
    /// client address (more get 421 4.7.0).
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// Sessions at once from one client address (`421 4.7.0` past it).
    #[serde(default = "default_max_sessions_per_ip")]
    pub max_sessions_per_ip: usize,
    /// Commands in one session; then 421 4.7.0.
    #[serde(default = "default_max_commands")]
    pub max_commands: u32,
    /// A session is closed (421 4.4.2) after this long, busy or not.
    #[serde(default = "default_max_session_time", with = "humantime_serde")]
    pub max_session_time: Duration,
    /// Messages (MAIL commands) one address may start per minute; 0: no limit.
    #[serde(default)]
    pub max_messages_per_ip_per_minute: u32,
    /// Recipients one address may have refused as ended, disabled or
    /// undeliverable aliases per minute, each put on an order's timeline;
    /// past it `450 4.7.1` and nothing is written. 0: no limit.
    #[serde(default = "default_max_refusals_per_ip_per_minute")]
    pub max_refusals_per_ip_per_minute: u32,
    /// Wait this long before greeting; a client that talks first is
    /// dropped (554 5.5.1). Even at 0, input already there is caught.
    #[serde(default, with = "humantime_serde")]
    pub greeting_delay: Duration,
    /// PEM certificate chain and key for STARTTLS (offered when set;
    /// re-read on SIGHUP).
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// Clients (CIDR, or single addresses) whose mail counts as
    /// authenticated for any participant, as Postfix's `mynetworks`.
    #[serde(default)]
    pub trusted_networks: TrustedNetworks,
}

/// `[alias]`: how aliases are made and how long they live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasSettings {
    /// The domain every alias is under.
    pub domain: String,
    /// The HMAC key aliases are made with (32 bytes or more).
    #[serde(default)]
    pub hmac_key: Secret,
    /// The key read from a file instead.
    #[serde(default)]
    pub hmac_key_file: Option<PathBuf>,
    /// Earlier keys: aliases and bounce addresses they made keep working;
    /// new ones are made with `hmac_key` only.
    #[serde(default)]
    pub retired_hmac_keys: Vec<Secret>,
    /// How long an alias lives (`2 months`).
    #[serde(default = "default_ttl")]
    pub ttl: String,
    /// An order invoiced or canceled keeps its aliases this long, then they end.
    #[serde(default = "default_end_grace", with = "humantime_serde")]
    pub end_grace: Duration,
    /// A reopened order's aliases work again for this long.
    #[serde(default = "default_reopen_window", with = "humantime_serde")]
    pub reopen_window: Duration,
}

fn default_max_message_size() -> usize {
    25 * 1024 * 1024
}
fn default_max_recipients() -> usize {
    100
}
fn default_max_errors() -> u32 {
    10
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_shutdown_grace() -> Duration {
    Duration::from_secs(30)
}
fn default_max_sessions() -> usize {
    1000
}
fn default_max_sessions_per_ip() -> usize {
    50
}
fn default_max_commands() -> u32 {
    1000
}
fn default_max_session_time() -> Duration {
    Duration::from_secs(1800)
}
fn default_max_refusals_per_ip_per_minute() -> u32 {
    30
}
fn default_ttl() -> String {
    "2 months".into()
}
fn default_end_grace() -> Duration {
    Duration::from_secs(7 * 86_400)
}
fn default_reopen_window() -> Duration {
    Duration::from_secs(30 * 86_400)
}
impl Settings {
    /// Read `path`, apply `CT_RELAY__…` overrides, and check the values.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut settings = Self::read(path, None)?;
        settings.read_secret_files()?;
        settings.validate()?;
        Ok(settings)
    }

    /// The file with overrides from `env` (the process's environment when
    /// `None`), typed but not checked and with key files not read.
    fn read(path: &Path, env: Option<config::Map<String, String>>) -> Result<Self, ConfigError> {
        let load_err = |source| ConfigError::Load {
            path: path.display().to_string(),
            source,
        };
        config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix(ENV_PREFIX)
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("alias.retired_hmac_keys")
                    .with_list_parse_key("auth.nameservers")
                    .with_list_parse_key("delivery.nameservers")
                    .with_list_parse_key("storage.encryption_old_keys")
                    .with_list_parse_key("smtp.trusted_networks")
                    .source(env),
            )
            .build()
            .map_err(load_err)?
            .try_deserialize()
            .map_err(load_err)
    }

    /// `alias.hmac_key_file` and `api.token_file`, each instead of the value.
    fn read_secret_files(&mut self) -> Result<(), ConfigError> {
        if let Some(path) = &self.alias.hmac_key_file {
            if !self.alias.hmac_key.is_empty() {
                return Err(ConfigError::Invalid(
                    "set alias.hmac_key or alias.hmac_key_file, not both".into(),
                ));
            }
            self.alias.hmac_key = read_secret_file(path, "alias.hmac_key_file")?;
        }
        if let Some(path) = &self.storage.encryption_key_file {
            if !self.storage.encryption_key.is_empty() {
                return Err(ConfigError::Invalid(
                    "set storage.encryption_key or storage.encryption_key_file, not both".into(),
                ));
            }
            self.storage.encryption_key = read_secret_file(path, "storage.encryption_key_file")?;
        }
        if let Some(path) = &self.api.token_file {
            if self.api.token.is_some() {
                return Err(ConfigError::Invalid(
                    "set api.token or api.token_file, not both".into(),
                ));
            }
            self.api.token = Some(read_secret_file(path, "api.token_file")?);
        }
        Ok(())
    }

    /// `alias.ttl` read.
    pub fn alias_ttl(&self) -> Result<Ttl, ConfigError> {
        self.alias
            .ttl
            .parse()
            .map_err(|e| ConfigError::Invalid(format!("alias.ttl: {e}")))
    }

    /// The alias maker. Fails when the HMAC key is missing or too short,
    /// which `serve` and `alias create` must refuse to run with.
    pub fn aliaser(&self) -> Result<Aliaser, ConfigError> {
        if self.alias.hmac_key.is_empty() {
            return Err(ConfigError::Invalid(
                "alias.hmac_key is not set (set it in the config file, alias.hmac_key_file or CT_RELAY__ALIAS__HMAC_KEY)".into(),
            ));
        }
        let key = AliasKey::parse(self.alias.hmac_key.expose())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let retired = self
            .alias
            .retired_hmac_keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                AliasKey::parse(k.expose())
                    .map_err(|e| ConfigError::Invalid(format!("alias.retired_hmac_keys[{i}]: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Aliaser::new(key, &self.alias.domain, self.alias_ttl()?).with_retired(retired))
    }

    /// The DKIM signer of `dkim`, if configured; a clear error for a
    /// missing or unusable key.
    pub fn dkim_signing(&self) -> Result<Option<DkimSigning>, ConfigError> {
        let Some(dkim) = &self.dkim else {
            return Ok(None);
        };
        DkimSigning::from_pem(&dkim.pem()?, &self.alias.domain, &dkim.selector)
            .map(Some)
            .map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// The ARC sealer: the DKIM key, unless `dkim.arc` is off.
    pub fn arc_sealing(&self) -> Result<Option<ArcSealing>, ConfigError> {
        let Some(dkim) = self.dkim.as_ref().filter(|d| d.arc) else {
            return Ok(None);
        };
        ArcSealing::from_pem(&dkim.pem()?, &self.alias.domain, &dkim.selector)
            .map(Some)
            .map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// True when an API token is the shipped development one (the daemon warns).
    pub fn uses_development_api_token(&self) -> bool {
        self.api
            .all_tokens()
            .iter()
            .any(|t| t.token.expose().starts_with(DEV_KEY_MARKER))
    }

    /// True when the shipped development HMAC key is in use (the daemon warns).
    pub fn uses_development_key(&self) -> bool {
        self.alias.hmac_key.expose().starts_with(DEV_KEY_MARKER)
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
