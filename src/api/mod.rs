//! The integrators' HTTP API (axum): aliases, store settings, timelines and
//! messages, behind bearer tokens; health and readiness for ops.

pub(crate) mod auth;
mod blocks;
mod error;
pub mod openapi;
mod routes;
mod settings;
mod types;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::alias::Aliaser;
use crate::config::ApiToken;
use crate::storage::Storage;

pub use error::ApiError;

/// What every request handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub storage: Arc<dyn Storage>,
    pub aliaser: Aliaser,
    pub tokens: Arc<Vec<ApiToken>>,
    /// `alias.end_grace` and `alias.reopen_window`, for order events.
    pub end_grace: std::time::Duration,
    pub reopen_window: std::time::Duration,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// True while the SMTP listener accepts connections (for /readyz).
    pub smtp_up: Arc<AtomicBool>,
    /// `webhook.allow_private_networks`: which webhook URLs stores may set.
    pub allow_private_webhooks: bool,
}

/// Bind `addr`; the returned future serves until `stop` turns true.
pub async fn bind(
    addr: SocketAddr,
    state: ApiState,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<impl std::future::Future<Output = std::io::Result<()>>> {
    let listener = TcpListener::bind(addr).await?;
    let app = routes::router(state);
    Ok(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
    })
}
