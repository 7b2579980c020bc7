//! The HTTP listener (`api.listen`): the integrators' JSON API under `/v1`,
//! health and metrics for ops, and the store console under `/console`.
//! `api` and `console` are siblings that share only this module's state and
//! the rules in `crate::service`; this module puts their routes together.

pub mod api;
pub mod console;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::ApiToken;
use crate::service::Services;

/// What every request handler shares, API and console alike.
#[derive(Clone)]
pub struct HttpState {
    /// The rules shared with the command line, and the storage behind them.
    pub services: Services,
    /// `api.token` and `[[api.tokens]]`: who may call, and for which store.
    pub tokens: Arc<Vec<ApiToken>>,
    /// Renders `/metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// True while the SMTP listener accepts connections (for /readyz).
    pub smtp_up: Arc<AtomicBool>,
    /// This relay's name in `write_probes` (`smtp.hostname`), for /readyz.
    pub node: String,
}

/// The whole HTTP application: the API's routes, the console's, and a JSON
/// 404/405 for anything else.
pub fn app(state: HttpState) -> Router {
    api::router()
        .merge(console::router())
        .fallback(|| async { api::ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            api::ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed here",
            )
        })
        .with_state(state)
}

/// Bind `addr`; the returned future serves until `stop` turns true.
pub async fn bind(
    addr: SocketAddr,
    state: HttpState,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<impl std::future::Future<Output = std::io::Result<()>>> {
    let listener = TcpListener::bind(addr).await?;
    let app = app(state);
    Ok(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
    })
}
