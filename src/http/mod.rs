//! The HTTP listener (`api.listen`): the integrators' JSON API under `/v1`,
//! health and metrics for ops, and the store console under `/console`.
//! `api` and `console` are siblings that share only this module's state and
//! the rules in `crate::service`; this module puts their routes together.

pub mod api;
pub mod auth_failures;
pub mod console;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};

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
    pub tokens: ApiTokens,
    /// Renders `/metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// True while the SMTP listener accepts connections (for /readyz).
    pub smtp_up: Arc<AtomicBool>,
    /// This relay's name in `write_probes` (`smtp.hostname`), for /readyz.
    pub node: String,
    /// Wakes this node's queue runner: a delivery made due now is claimed
    /// at once, not at the next poll.
    pub queue_wake: Arc<tokio::sync::Notify>,
    /// Failed authentications per client address.
    pub auth_failures: Arc<auth_failures::AuthFailures>,
}

/// The configured API tokens, replaced whole when the configuration is
/// reloaded (SIGHUP); requests read the set current when they arrive.
#[derive(Clone)]
pub struct ApiTokens(Arc<RwLock<Arc<Vec<ApiToken>>>>);

impl ApiTokens {
    /// These tokens.
    pub fn new(tokens: Vec<ApiToken>) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(tokens))))
    }

    /// The tokens now.
    pub fn current(&self) -> Arc<Vec<ApiToken>> {
        self.0.read().expect("not poisoned").clone()
    }

    /// Replace every token: a token no longer listed stops working at once,
    /// and so do the console sessions opened with it.
    pub fn replace(&self, tokens: Vec<ApiToken>) {
        *self.0.write().expect("not poisoned") = Arc::new(tokens);
    }
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
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
    })
}
