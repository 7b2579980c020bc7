//! Storage: everything ct-relay keeps, behind one trait so SQLite (one node) and
//! PostgreSQL (many nodes) serve the same callers.
//!
//! Invariants every implementation keeps:
//! - `apply` writes its whole batch in one transaction: all or nothing. An
//!   accepted message goes in with its deliveries, its timeline entry and any
//!   new contact participants.
//! - A delivery's outcome is written only by the node holding its lease.
//! - Real addresses are stored (delivery needs them) but never returned by the
//!   timeline queries.

mod audit;
mod committer;
pub mod door;
pub mod encryption;
pub mod erasure;
mod holds;
pub mod nodes;
mod notices;
pub mod outbox;
mod participants;
mod placeholders;
mod postgres;
mod protection;
pub mod purge;
mod queries;
pub mod queue_control;
mod redaction;
mod refusals;
pub mod rotation;
mod rows;
mod schema;
pub mod settings;
mod sorted;
mod sql;
mod subjects;
mod suppression;
pub mod timeline;

pub mod sqlite;
mod types;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::alias::{MaskMode, Participant};
use crate::config::StorageSettings;

pub use audit::Reveal;
pub use committer::{CommitError, Committer};
pub use door::{DoorStore, RecentMail};
pub use encryption::Keyring;
pub use erasure::{ErasedCounts, Erasure, HeldOrder};
pub use holds::Hold;
pub use nodes::Nodes;
pub use outbox::*;
pub use postgres::PgStorage;
pub use protection::Protection;
pub use queue_control::{QueueChange, QueueControl};
pub use settings::*;
pub use suppression::UNDELIVERABLE_EVENT;
pub use timeline::{TimelinePage, Timelines, PAGE_MAX};
pub use types::*;

/// Why storage failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// The database could not be reached or failed the operation; worth retrying.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Stored data that does not make sense (a bug or a hand edit).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A `storage.url` that is neither SQLite nor PostgreSQL.
    #[error("unsupported storage url `{0}` (expected sqlite://… or postgres://…)")]
    UnsupportedUrl(String),
    /// Migrations could not be applied.
    #[error("migration failed: {0}")]
    Migration(String),
}

impl From<sqlx::Error> for StorageError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_) => StorageError::Corrupt(e.to_string()),
            other => StorageError::Unavailable(other.to_string()),
        }
    }
}

/// The result of a storage operation.
pub type Result<T> = std::result::Result<T, StorageError>;

/// The one write path the group committer needs.
#[async_trait]
pub trait BatchWriter: Send + Sync + 'static {
    /// Group commit: every write of the batch in one transaction. Returns,
    /// per write, whether it applied (an attempt applies only under its lease).
    async fn apply(&self, batch: &[Write]) -> Result<Vec<bool>>;
}

/// Keeping the database's files small after bulk work.
#[async_trait]
pub trait Maintenance: Send + Sync {
    /// After an import or a purge: SQLite empties its write-ahead log and,
    /// with `shrink` and more than a quarter of the file free, gives the
    /// file system back all but a tenth (the rest are reused by the next
    /// writes). Serve's periodic purge does not shrink: in a steady state
    /// the pages a purge frees hold the next mail, and the file keeps its
    /// size; `ct-relay purge` does. PostgreSQL analyzes the tables that
    /// grew (dead rows are autovacuum's).
    async fn compact(&self, shrink: bool) -> Result<()>;
}

/// Everything the relay keeps, for every caller (acceptance, the queue, the
/// HTTP API, the console, the command line), implemented once for SQLite
/// and PostgreSQL over `sql::Backend`. Callers hold an `Arc<dyn Storage>`
/// from `storage::open`.
#[async_trait]
pub trait Storage:
    BatchWriter
    + WebhookOutbox
    + StoreSettings
    + DoorStore
    + Timelines
    + Maintenance
    + Nodes
    + Protection
    + QueueControl
{
    /// Apply this backend's migrations.
    async fn migrate(&self) -> Result<()>;

    /// One cheap round trip: is the database there?
    async fn ping(&self) -> Result<()>;

    /// One small committed write (a row of `write_probes` named `node`):
    /// does storage take writes? A full disk, a read-only database or a
    /// writer holding the lock past the busy timeout make it fail.
    async fn probe_write(&self, node: &str) -> Result<()>;

    /// A stored (masked) message and the order it belongs to.
    async fn message(&self, message_id: &str) -> Result<Option<StoredMessage>>;

    /// The store's mask mode; `hard` for a store never configured.
    async fn store_mode(&self, store: &str) -> Result<MaskMode>;
    /// Set the mask mode for aliases created from now on.
    async fn set_store_mode(&self, store: &str, mode: MaskMode) -> Result<()>;
    /// The store's mode, webhook and counts of aliases and orders.
    async fn store_summary(&self, store: &str) -> Result<StoreSummary>;

    /// True when one process owns the database (SQLite): any lease found at
    /// start belongs to a process that died, and is released at once.
    fn single_node(&self) -> bool;

    /// Insert each participant unless its alias exists, in one transaction;
    /// return the stored rows either way (creation is idempotent).
    async fn ensure_participants(&self, ps: &[Participant]) -> Result<Vec<Participant>>;
    /// Look up by alias, case-insensitively.
    async fn find_alias(&self, alias: &str) -> Result<Option<Participant>>;
    /// The alias, every participant of its order (itself included) and its
    /// store's policy, in one query: what accepting mail to it needs.
    async fn find_alias_with_order(
        &self,
        alias: &str,
    ) -> Result<Option<(Participant, OrderAtRcpt)>>;
    /// Returns false when there is no such alias.
    async fn disable_alias(&self, alias: &str, now: DateTime<Utc>) -> Result<bool>;
    /// Give the alias's participant a new real address and forget its hard
    /// bounces (it is deliverable again); the participant as it is now.
    async fn change_address(&self, alias: &str, email: &str) -> Result<Option<Participant>>;

    /// Every participant of the store's order, oldest first.
    async fn order_participants(&self, store: &str, order: &str) -> Result<Vec<Participant>>;
    /// Apply an order event to every alias of the order; returns how many.
    async fn set_order_expiry(&self, store: &str, order: &str, expiry: OrderExpiry) -> Result<u64>;
    /// Stores that have an order with this id.
    async fn stores_with_order(&self, order: &str) -> Result<Vec<String>>;

    /// Lease up to `limit` deliveries that are due at `now` to `node`.
    async fn claim_due(
        &self,
        node: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DeliveryJob>>;
    /// The stored (masked) message's bytes.
    async fn message_content(&self, message_id: &str) -> Result<Option<Vec<u8>>>;
    /// One delivery, leased or not.
    async fn delivery(&self, delivery_id: &str) -> Result<Option<DeliveryJob>>;
    /// Give back leases: this node's (`Some`) or every node's (`None`, used by a
    /// single-node database at start, where any lease is a dead process's).
    async fn release_leases(&self, node: Option<&str>) -> Result<u64>;
    /// Give back `node`'s leases on deliveries it did not attempt, due
    /// again at `at`; their attempts and states stay as they are. Returns
    /// how many were still `node`'s.
    async fn postpone(&self, node: &str, delivery_ids: &[String], at: DateTime<Utc>)
        -> Result<u64>;
    /// When the earliest pending delivery can next be claimed (due and not
    /// leased), if any.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>>;

    /// Deliveries not delivered (waiting or failed), the next due first;
    /// only `store`'s when given.
    async fn queue_list(&self, store: Option<&str>, limit: u32) -> Result<Vec<QueueEntry>>;
    /// Deliveries not yet final, and when the oldest of them was accepted.
    async fn queue_stats(&self) -> Result<(u64, Option<DateTime<Utc>>)>;
    /// Make a queued, retrying or failed delivery due now. False if unknown or delivered.
    async fn queue_retry(&self, delivery_id: &str, now: DateTime<Utc>) -> Result<bool>;

    /// Delete up to `limit` aliases that expired before `aliases_before`, and
    /// up to `limit` messages (with their deliveries and timeline entries)
    /// received before `messages_before` whose deliveries are all final, and
    /// up to `limit` webhook events written before `messages_before`.
    /// One short transaction per call: callers loop until nothing is left.
    async fn purge_batch(
        &self,
        aliases_before: DateTime<Utc>,
        messages_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<PurgeCounts>;
}

/// Open the storage named by `url` and apply its migrations.
pub async fn open(settings: &StorageSettings) -> Result<Arc<dyn Storage>> {
    let url = settings.url.as_str();
    let keyring = Arc::new(
        settings
            .keyring()
            .map_err(|e| StorageError::Unavailable(e.to_string()))?,
    );
    if url.starts_with("sqlite:") {
        let s = sqlite::SqliteStorage::connect(
            url,
            settings.max_connections,
            settings.busy_timeout,
            settings.wal_limit_mib << 20,
        )
        .await?
        .with_keyring(keyring);
        s.migrate().await?;
        Ok(Arc::new(s))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let s = postgres::PgStorage::connect(url, settings.max_connections, settings.busy_timeout)
            .await?
            .with_keyring(keyring);
        s.migrate().await?;
        Ok(Arc::new(s))
    } else {
        Err(StorageError::UnsupportedUrl(url.to_string()))
    }
}
