//! The integrators' HTTP API (axum): aliases, order events, store settings,
//! blocks, timelines and messages, behind bearer tokens; health, readiness
//! and metrics for ops. Handlers read the request and shape the JSON; the
//! rules are `crate::service`'s.

pub(crate) mod auth;
mod blocks;
mod error;
pub mod openapi;
mod protection;
mod routes;
mod schema;
mod settings;
mod types;

pub use error::ApiError;
pub use routes::router;
