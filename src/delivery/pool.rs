//! Kept-open SMTP connections, per next hop (a smarthost, or one address of
//! one MX host), so a run of messages to one destination pays for a
//! connection, a greeting and a TLS handshake once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::client::Client;

/// A kept connection idle longer than this is checked (NOOP) before use.
pub const CHECK_IDLE_AFTER: Duration = Duration::from_secs(10);
/// A kept connection idle longer than this is closed rather than used:
/// receivers drop idle clients after a few minutes (RFC 5321 4.5.3.2
/// gives servers 5), and a check would likely fail.
const CLOSE_IDLE_AFTER: Duration = Duration::from_secs(120);

/// Idle connections by next hop.
pub struct Pool {
    idle: Mutex<HashMap<String, Vec<(Client, Instant)>>>,
    /// Most idle connections kept per next hop.
    per_hop: usize,
}

/// A connection taken from the pool: when it was last used.
pub struct Kept {
    pub client: Client,
    pub idle_for: Duration,
}

impl Pool {
    /// A pool keeping up to `per_hop` idle connections to each next hop.
    pub fn new(per_hop: usize) -> Self {
        Self {
            idle: Mutex::new(HashMap::new()),
            per_hop: per_hop.max(1),
        }
    }

    /// The most recently used idle connection to `hop`, if any; those idle
    /// too long are closed on the way.
    pub fn take(&self, hop: &str) -> Option<Kept> {
        let mut idle = self.idle.lock().expect("pool lock");
        let kept = idle.get_mut(hop)?;
        let mut stale = Vec::new();
        let found = loop {
            match kept.pop() {
                Some((client, since)) if since.elapsed() > CLOSE_IDLE_AFTER => stale.push(client),
                Some((client, since)) => {
                    break Some(Kept {
                        client,
                        idle_for: since.elapsed(),
                    })
                }
                None => break None,
            }
        };
        if kept.is_empty() {
            idle.remove(hop);
        }
        drop(idle);
        if !stale.is_empty() {
            tokio::spawn(async move {
                for client in stale {
                    client.quit().await;
                }
            });
        }
        found
    }

    /// Keep `client` for the next message to `hop`, unless it cannot carry
    /// one or enough are kept already.
    pub fn put(&self, hop: &str, client: Client) {
        if client.is_broken() {
            return;
        }
        let mut idle = self.idle.lock().expect("pool lock");
        let kept = idle.entry(hop.to_string()).or_default();
        if kept.len() < self.per_hop {
            kept.push((client, Instant::now()));
        } else {
            drop(idle);
            tokio::spawn(client.quit());
        }
    }
}
