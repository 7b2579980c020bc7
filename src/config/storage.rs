//! `[storage]`: where ct-relay keeps its data and how it keeps it small.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Secret};
use crate::storage::encryption::parse_key;
use crate::storage::Keyring;

/// `[storage]`: the database, its pool, and what is kept how long.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// `sqlite://…` or `postgres://…`.
    pub url: String,
    /// Connections in the pool.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Most messages committed in one transaction (group commit).
    #[serde(default = "default_commit_batch")]
    pub commit_batch: usize,
    /// How long a write waits for the database lock (SQLite) or a pooled
    /// connection (PostgreSQL) before the client gets 451.
    #[serde(default = "default_busy_timeout", with = "humantime_serde")]
    pub busy_timeout: Duration,
    /// Messages, deliveries and timeline entries older than this are purged
    /// (once every delivery of the message is final).
    #[serde(default = "default_retention", with = "humantime_serde")]
    pub retention: Duration,
    /// Expired aliases are purged this long after they expired.
    #[serde(default = "default_expired_alias_retention", with = "humantime_serde")]
    pub expired_alias_retention: Duration,
    /// How often `serve` purges; rows deleted per transaction.
    #[serde(default = "default_purge_interval", with = "humantime_serde")]
    pub purge_interval: Duration,
    /// Rows deleted per purge transaction.
    #[serde(default = "default_purge_batch")]
    pub purge_batch: u32,
    /// SQLite: the write-ahead log is checkpointed and truncated when it
    /// grows past this many MiB, so it never holds more than about this.
    #[serde(default = "default_wal_limit_mib")]
    pub wal_limit_mib: u64,
    /// The key real addresses and message text are sealed under at rest
    /// (`hex:` and 64 hex digits); empty: stored in clear.
    #[serde(default)]
    pub encryption_key: Secret,
    /// A file holding `encryption_key` instead.
    #[serde(default)]
    pub encryption_key_file: Option<PathBuf>,
    /// Earlier keys: values sealed under them are still read, until
    /// `ct-relay keys rotate` has sealed them under the current one.
    #[serde(default)]
    pub encryption_old_keys: Vec<Secret>,
}

impl StorageSettings {
    /// Defaults for everything but the URL (tools and tests).
    pub fn with_url(url: &str) -> Self {
        Self {
            url: url.to_string(),
            max_connections: default_max_connections(),
            commit_batch: default_commit_batch(),
            busy_timeout: default_busy_timeout(),
            retention: default_retention(),
            expired_alias_retention: default_expired_alias_retention(),
            purge_interval: default_purge_interval(),
            purge_batch: default_purge_batch(),
            wal_limit_mib: default_wal_limit_mib(),
            encryption_key: Secret::default(),
            encryption_key_file: None,
            encryption_old_keys: Vec::new(),
        }
    }

    /// The keys of `encryption_key` and `encryption_old_keys`; an error
    /// names the key that is not `hex:` and 64 hex digits.
    pub fn keyring(&self) -> Result<Keyring, ConfigError> {
        let current = match self.encryption_key.is_empty() {
            true => None,
            false => Some(
                parse_key(self.encryption_key.expose())
                    .map_err(|e| ConfigError::Invalid(format!("storage.encryption_key {e}")))?,
            ),
        };
        let old = self
            .encryption_old_keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                parse_key(k.expose()).map_err(|e| {
                    ConfigError::Invalid(format!("storage.encryption_old_keys[{i}] {e}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Keyring::new(current, &old))
    }

    /// True when the key shipped in `config/default.toml` is in use.
    pub fn uses_development_encryption_key(&self) -> bool {
        self.encryption_key.expose() == DEVELOPMENT_ENCRYPTION_KEY
    }
}

/// The encryption key of `config/default.toml`: for trying the relay out,
/// never for real mail (the daemon warns).
pub const DEVELOPMENT_ENCRYPTION_KEY: &str =
    "hex:00000000000000000000000000000000000000000000000000000000000000de";

fn default_max_connections() -> u32 {
    8
}
fn default_commit_batch() -> usize {
    256
}
fn default_busy_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_retention() -> Duration {
    Duration::from_secs(180 * 86_400)
}
fn default_expired_alias_retention() -> Duration {
    Duration::from_secs(30 * 86_400)
}
fn default_purge_interval() -> Duration {
    Duration::from_secs(3600)
}
fn default_purge_batch() -> u32 {
    500
}
fn default_wal_limit_mib() -> u64 {
    64
}
