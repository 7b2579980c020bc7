//! The rules the HTTP API, the console and the command line share: who may
//! act for which store, creating aliases, order events and when they end
//! an order's aliases, store settings, and reading timelines. Front ends
//! parse their input and format the answer; the decisions are made here,
//! once.

pub mod access;
pub mod aliases;
pub mod blocks;
pub mod holds;
pub mod orders;
pub mod settings;
pub mod subjects;
pub mod timelines;

use std::sync::Arc;
use std::time::Duration;

use crate::alias::{AliasError, Aliaser};
use crate::config::Settings;
use crate::storage::{Storage, StorageError};

pub use crate::policy::blocks::BlockChange;
pub use access::{find_token, Scope};
pub use aliases::NewAlias;
pub use orders::{OrderEvent, OrderEventOutcome};
pub use settings::SettingsChange;

/// What the shared rules need: the database, the alias key and the
/// settings that shape their answers. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    /// Where aliases, settings and timelines live.
    pub storage: Arc<dyn Storage>,
    /// Makes aliases (and signs console sessions) with the alias key.
    pub aliaser: Aliaser,
    /// `alias.end_grace`: how long an invoiced or canceled order's aliases go on working.
    pub end_grace: Duration,
    /// `alias.reopen_window`: how long a reopened order's aliases work again.
    pub reopen_window: Duration,
    /// `webhook.allow_private_networks`: which webhook URLs stores may set.
    pub allow_private_webhooks: bool,
    /// `storage.retention`: the longest a store may keep its mail.
    pub max_retention: Duration,
}

impl Services {
    /// The shared rules over `storage`, with the alias maker and the
    /// settings they take from the configuration.
    pub fn new(settings: &Settings, storage: Arc<dyn Storage>, aliaser: Aliaser) -> Self {
        Self {
            storage,
            aliaser,
            end_grace: settings.alias.end_grace,
            reopen_window: settings.alias.reopen_window,
            allow_private_webhooks: settings.webhook.allow_private_networks,
            max_retention: settings.storage.retention,
        }
    }
}

/// Why a shared rule said no. Each front end turns it into its own form:
/// an HTTP status with JSON, a console page, a command-line message.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request's values break a rule (HTTP 422).
    #[error("{0}")]
    Invalid(String),
    /// The request cannot be read as asked (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    /// The caller's token is limited to another store (HTTP 403).
    #[error("this token may not act for store `{0}`")]
    Forbidden(String),
    /// Nothing by that name, or nothing the caller may see (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// An order id no store has.
    #[error("no order `{0}`")]
    NoSuchOrder(String),
    /// An order id several stores have: the caller must name the store.
    #[error("order `{order}` exists in stores {}", stores.join(", "))]
    AmbiguousOrder {
        /// The order id asked for.
        order: String,
        /// The stores that have it.
        stores: Vec<String>,
    },
    /// A timeline cursor that names no entry of that timeline.
    #[error("`{0}` names no entry of this timeline")]
    UnknownCursor(String),
    /// The database failed; worth trying again.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<AliasError> for ServiceError {
    fn from(e: AliasError) -> Self {
        Self::Invalid(e.to_string())
    }
}

/// The result of a shared rule.
pub type Result<T> = std::result::Result<T, ServiceError>;
