//! `[storage]`: where ct-relay keeps its data and how it keeps it small.

use std::time::Duration;

use serde::Deserialize;

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
        }
    }
}

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
