//! Accepts SMTP connections and gives each its own task. On shutdown it stops
//! accepting, tells every session (which answer 421 at their next wait), and
//! waits for them up to the grace period.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::connection::{self, ConnectionContext};

/// Accepts SMTP connections and runs a session for each, up to
/// `max_connections` at once; on shutdown it stops accepting and waits for
/// the sessions, up to a grace period.
pub struct Listener {
    listener: TcpListener,
    ctx: Arc<ConnectionContext>,
    /// Caps concurrent sessions so a flood cannot exhaust memory or file handles.
    slots: Arc<Semaphore>,
}

impl Listener {
    /// A listener on `listener`, with each connection's context.
    pub fn new(listener: TcpListener, ctx: Arc<ConnectionContext>, max_connections: usize) -> Self {
        Self {
            listener,
            ctx,
            slots: Arc::new(Semaphore::new(max_connections)),
        }
    }

    /// Serve until `shutdown` turns true, then give sessions `grace` to end.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let mut sessions = JoinSet::new();
        loop {
            let slot = tokio::select! {
                slot = self.slots.clone().acquire_owned() => slot.expect("semaphore never closed"),
                _ = shutdown.changed() => break,
            };
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, addr)) => {
                        let ctx = self.ctx.clone();
                        let stop = shutdown.clone();
                        sessions.spawn(async move {
                            connection::handle(stream, addr, ctx, stop).await;
                            drop(slot);
                        });
                    }
                    Err(e) => {
                        // Out of file handles and the like: back off, do not spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
                _ = shutdown.changed() => break,
            }
        }
        drop(self.listener);
        let open = sessions.len();
        if open > 0 {
            tracing::info!(sessions = open, "waiting for open sessions");
        }
        let drained = tokio::time::timeout(grace, async {
            while sessions.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                sessions = sessions.len(),
                "grace period over; aborting sessions"
            );
            sessions.abort_all();
        }
    }
}
