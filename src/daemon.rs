//! `ct-relay serve`: wires storage, the committer, the SMTP listener and the
//! delivery queue together, and stops them in order on SIGTERM or SIGINT.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use ulid::Ulid;

use crate::accept::Acceptor;
use crate::bounce::Notifier;
use crate::config::StorageSettings;
use crate::config::{ConfigError, Settings};
use crate::delivery::{self, TransportError};
use crate::http::{self, HttpState};
use crate::policy::{Scanner, Stage};
use crate::queue::{self, QueueRunner, RetryPolicy};
use crate::sender_auth::SenderAuth;
use crate::server::{ClientLimits, ConnectionContext, Listener, TlsError, TlsFiles};
use crate::service::Services;
use crate::smtp::Limits;
use crate::storage::{self, Committer, Storage, StorageError};
use crate::webhook::WebhookDispatcher;

/// Why the daemon could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The transport could not be set up.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A listener could not bind its address.
    #[error("cannot listen on {0}: {1}")]
    Listen(std::net::SocketAddr, std::io::Error),
    /// The webhook client could not be built.
    #[error("cannot set up the webhook client: {0}")]
    Webhook(#[from] reqwest::Error),
    /// The TLS certificate or key could not be read.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Only one of the certificate and its key is configured.
    #[error("smtp.tls_cert_file and smtp.tls_key_file go together")]
    TlsHalf,
    /// The signal handlers could not be installed.
    #[error("cannot install signal handler: {0}")]
    Signal(std::io::Error),
}

/// Run the relay until SIGTERM or SIGINT: migrate, listen for SMTP and HTTP,
/// deliver, send webhooks, purge; then stop in order (listener, sessions,
/// queue runner, webhooks, heartbeat, committer).
/// `config` is the file `settings` came from, read again on SIGHUP.
pub async fn serve(settings: Settings, config: &Path) -> Result<(), DaemonError> {
    let aliaser = settings.aliaser()?;
    if settings.uses_development_key() {
        tracing::warn!(
            "alias.hmac_key is the shipped development key; set a secret one in production"
        );
    }
    let env: Vec<(String, String)> = std::env::vars().collect();
    for name in crate::config::misspelled_overrides(&env) {
        tracing::warn!(variable = %name, "not read: overrides are spelled CT_RELAY__SECTION__KEY");
    }
    if settings.uses_development_api_token() {
        tracing::warn!(
            "an API token is the shipped development token; set a secret one in production"
        );
    }
    match settings.storage.keyring()?.current_id() {
        Some(id) => tracing::info!(key = id, "addresses and messages are sealed at rest"),
        None => tracing::warn!(
            "storage.encryption_key is not set: addresses and messages are stored in clear"
        ),
    }
    if settings.storage.uses_development_encryption_key() {
        tracing::warn!(
            "storage.encryption_key is the shipped development key; set a secret one in production"
        );
    }
    let tls = match (&settings.smtp.tls_cert_file, &settings.smtp.tls_key_file) {
        (Some(cert), Some(key)) => Some(Arc::new(TlsFiles::load(cert, key)?)),
        (None, None) => None,
        _ => return Err(DaemonError::TlsHalf),
    };
    let sender_auth = settings
        .auth
        .check
        .then(|| SenderAuth::new(&settings.auth, &settings.smtp.hostname))
        .transpose()?;
    if !settings.auth.check {
        tracing::warn!(
            "auth.check = false: no sender is authenticated, so anyone may write as any participant; development only"
        );
    }
    let scanner = Scanner::new(&settings.scan).map_err(ConfigError::Invalid)?;
    match &settings.scan.rspamd_url {
        Some(url) => {
            tracing::info!(rspamd = %url, on_error = ?settings.scan.on_error, "scanning incoming mail")
        }
        None => tracing::warn!(
            "scan.rspamd_url is not set: incoming mail is not scanned for spam or malware"
        ),
    }
    if let Some(d) = &settings.dkim {
        tracing::info!(domain = %settings.alias.domain, selector = %d.selector, "DKIM signing on");
    }
    let storage = storage::open(&settings.storage).await?;
    if storage.single_node() {
        storage.release_webhook_leases(None).await?;
        let released = storage.release_leases(None).await?;
        if released > 0 {
            tracing::info!(
                deliveries = released,
                "resuming deliveries left in flight by the previous run"
            );
        }
    }
    let socket = TcpListener::bind(settings.smtp.listen)
        .await
        .map_err(|e| DaemonError::Listen(settings.smtp.listen, e))?;
    let local = socket
        .local_addr()
        .map_err(|e| DaemonError::Listen(settings.smtp.listen, e))?;

    let wake = Arc::new(Notify::new());
    let (committer, committer_task) =
        Committer::start(storage.clone(), settings.storage.commit_batch, wake.clone());
    let node = format!("{}-{}", settings.smtp.hostname, Ulid::new());
    // Fresh mail goes to this node's runner in memory while it has room for
    // twice its workers: as many as one claim would lease.
    let (handoff, fresh) = queue::handoff::channel(
        &node,
        settings.delivery.lease,
        settings.delivery.workers * 2,
    );
    let mut acceptor = Acceptor::new(
        storage.clone(),
        committer.clone(),
        aliaser.clone(),
        &settings.smtp.hostname,
        sender_auth,
        Stage::new(
            storage.clone(),
            aliaser.clone(),
            scanner,
            settings.scan.on_error,
            settings.smtp.trusted_networks.clone(),
            settings.policy.clone(),
        ),
    )
    .with_handoff(handoff)
    .with_suppression(settings.delivery.suppression());
    if let Some(sealing) = settings.arc_sealing()? {
        acceptor = acceptor.with_arc_sealing(Arc::new(sealing));
    }
    let ctx = Arc::new(ConnectionContext {
        acceptor,
        hostname: settings.smtp.hostname.clone(),
        limits: Limits {
            max_message_size: settings.smtp.max_message_size,
            max_recipients: settings.smtp.max_recipients,
            max_errors: settings.smtp.max_errors,
            max_commands: settings.smtp.max_commands,
        },
        idle_timeout: settings.smtp.idle_timeout,
        max_session_time: settings.smtp.max_session_time,
        greeting_delay: settings.smtp.greeting_delay,
        clients: ClientLimits::new(
            settings.smtp.max_sessions_per_ip,
            settings.smtp.max_messages_per_ip_per_minute,
            settings.smtp.max_refusals_per_ip_per_minute,
        ),
        tls: tls.clone(),
    });
    let runner = Arc::new(queue_runner(
        &settings,
        storage.clone(),
        committer,
        node.clone(),
        wake.clone(),
    )?);

    let webhooks = Arc::new(WebhookDispatcher::new(
        storage.clone(),
        node.clone(),
        &settings.webhook,
    )?);

    let (stop, stopped) = watch::channel(false);
    let smtp_up = Arc::new(AtomicBool::new(true));
    let tokens = http::ApiTokens::new(settings.api.all_tokens());
    let api = match settings.api.listen {
        Some(addr) => {
            let state = HttpState {
                node: settings.smtp.hostname.clone(),
                services: Services::new(&settings, storage.clone(), aliaser.clone()),
                tokens: tokens.clone(),
                metrics: crate::telemetry::install(),
                smtp_up: smtp_up.clone(),
                queue_wake: wake.clone(),
                auth_failures: Arc::new(http::auth_failures::AuthFailures::new(
                    settings.api.max_auth_failures_per_minute,
                )),
            };
            let serve = http::bind(addr, state, stopped.clone())
                .await
                .map_err(|e| DaemonError::Listen(addr, e))?;
            tracing::info!(api = %addr, "HTTP API listening");
            Some(tokio::spawn(serve))
        }
        None => None,
    };
    let grace = settings.smtp.shutdown_grace;
    let listener = tokio::spawn(
        Listener::new(socket, ctx, settings.smtp.max_sessions).run(stopped.clone(), grace),
    );
    // The heartbeat outlives the runner and the dispatcher: a node finishing
    // its deliveries in flight is not dead.
    let (stop_beating, beating) = watch::channel(false);
    let heartbeat = (!storage.single_node()).then(|| {
        tokio::spawn(queue::heartbeat::beat(
            storage.clone(),
            node.clone(),
            settings.delivery.heartbeat,
            beating,
        ))
    });
    let queue = tokio::spawn(runner.run(Some(fresh), stopped.clone(), grace));
    let webhooks = tokio::spawn(webhooks.run(stopped.clone(), grace));
    let purger = tokio::spawn(purge_periodically(
        storage.clone(),
        settings.storage.clone(),
        stopped,
    ));
    tracing::info!(version = env!("CARGO_PKG_VERSION"), smtp = %local, node = %node, transport = settings.delivery.transport.as_str(), "ct-relay started");

    wait_for_signal(config, tls.as_deref(), &tokens).await?;
    tracing::info!("shutting down: no new sessions; finishing open ones");
    smtp_up.store(false, Ordering::SeqCst);
    let _ = stop.send(true);
    let _ = listener.await;
    if let Some(api) = api {
        let _ = api.await;
    }
    let _ = queue.await;
    let _ = webhooks.await;
    let _ = stop_beating.send(true);
    if let Some(heartbeat) = heartbeat {
        let _ = heartbeat.await;
    }
    let _ = purger.await;
    // Sessions and workers are gone, and with them every committer handle:
    // the committer finishes what it holds and stops.
    let _ = committer_task.await;
    tracing::info!("stopped");
    Ok(())
}

/// The queue runner `settings` describe, with its transport and DKIM
/// signing, recording through `committer` as `node`: `serve`'s, and the
/// one `ct-relay queue retry` attempts a delivery with.
#[allow(clippy::result_large_err)] // called once per process, at start
pub fn queue_runner(
    settings: &Settings,
    storage: Arc<dyn Storage>,
    committer: Committer,
    node: String,
    wake: Arc<Notify>,
) -> Result<QueueRunner, DaemonError> {
    let transport = delivery::from_settings(
        &settings.delivery,
        &settings.smtp.hostname,
        &settings.auth.nameservers,
    )?;
    Ok(QueueRunner {
        notifier: Notifier::new(
            storage.clone(),
            &settings.smtp.hostname,
            &settings.alias.domain,
        )
        .with_suppression(settings.delivery.suppression()),
        storage,
        transport,
        committer,
        node,
        policy: RetryPolicy {
            initial: settings.delivery.retry_initial,
            max: settings.delivery.retry_max,
            give_up_after: settings.delivery.give_up_after,
        },
        workers: settings.delivery.workers,
        limits: settings.delivery.clone(),
        lease: settings.delivery.lease,
        poll_interval: settings.delivery.poll_interval,
        wake,
        dkim: settings.dkim_signing()?.map(Arc::new),
    })
}

/// Wait for SIGTERM or SIGINT; on SIGHUP, reload what can change while
/// serving (see `reload`).
async fn wait_for_signal(
    config: &Path,
    tls: Option<&TlsFiles>,
    tokens: &http::ApiTokens,
) -> Result<(), DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signal)?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = hup.recv() => reload(config, tls, tokens),
        }
    }
}

/// SIGHUP: read the configuration file (and CT_RELAY__* overrides) again
/// and take its API tokens (`api.token`, `api.token_file`, `[[api.tokens]]`);
/// re-read the STARTTLS certificate and key files. A configuration that no
/// longer loads changes nothing. Everything else, keys included, is read
/// only at start (docs/OPERATIONS.md says why).
fn reload(config: &Path, tls: Option<&TlsFiles>, tokens: &http::ApiTokens) {
    match Settings::load(config) {
        Ok(settings) => {
            let new = settings.api.all_tokens();
            tracing::info!(tokens = new.len(), "SIGHUP: API tokens reloaded");
            tokens.replace(new);
        }
        Err(e) => tracing::warn!(
            error = %e,
            "SIGHUP: the configuration does not load; API tokens unchanged"
        ),
    }
    match tls.map(TlsFiles::reload) {
        Some(Ok(())) => tracing::info!("SIGHUP: TLS certificate reloaded"),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "SIGHUP: TLS certificate not reloaded; the old one stays")
        }
        None => {}
    }
}

/// Purge every `purge_interval`, starting one interval after start.
async fn purge_periodically(
    storage: Arc<dyn Storage>,
    settings: StorageSettings,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(settings.purge_interval) => {}
            _ = stop.changed() => return,
        }
        let purged = tokio::select! {
            result = storage::purge::purge(storage.as_ref(), &settings, false) => result,
            _ = stop.changed() => return,
        };
        match purged {
            Ok(p) if p.is_empty() => {}
            Ok(p) => tracing::info!(
                aliases = p.aliases,
                messages = p.messages,
                entries = p.entries,
                webhook_events = p.webhook_events,
                "purged"
            ),
            Err(e) => tracing::warn!(error = %e, "purge failed; trying again next interval"),
        }
    }
}
