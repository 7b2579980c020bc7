//! Limits per client address, shared by all sessions: how many sessions one
//! address may hold open, and how many messages it may start per minute.
//! Memory stays bounded: an address is forgotten when its last session
//! closes and its minute is over.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// Above this many remembered addresses, expired rate windows are swept.
const SWEEP_ABOVE: usize = 10_000;

#[derive(Default)]
struct Client {
    sessions: usize,
    window_start: Option<Instant>,
    messages: u32,
    refusals: u32,
}

/// Limits per client address shared by a listener's sessions: sessions at
/// once and messages per minute.
pub struct ClientLimits {
    max_sessions: usize,
    /// 0: no limit.
    max_messages_per_minute: u32,
    /// Refused recipients written to timelines per minute; 0: no limit.
    max_refusals_per_minute: u32,
    clients: Mutex<HashMap<IpAddr, Client>>,
}

/// A session's hold on its address's count; released on drop.
pub struct SessionSlot {
    limits: Arc<ClientLimits>,
    ip: IpAddr,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut clients = self.limits.clients.lock().expect("not poisoned");
        if let Some(c) = clients.get_mut(&self.ip) {
            c.sessions = c.sessions.saturating_sub(1);
            let window_over = c.window_start.is_none_or(|t| t.elapsed() >= WINDOW);
            if c.sessions == 0 && window_over {
                clients.remove(&self.ip);
            }
        }
    }
}

impl ClientLimits {
    /// Limits of `max_sessions` per address, `max_messages_per_minute` and
    /// `max_refusals_per_minute` (0: none).
    pub fn new(
        max_sessions: usize,
        max_messages_per_minute: u32,
        max_refusals_per_minute: u32,
    ) -> Arc<Self> {
        Arc::new(Self {
            max_sessions,
            max_messages_per_minute,
            max_refusals_per_minute,
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// A session for `ip`, unless it already holds as many as allowed.
    pub fn open_session(self: &Arc<Self>, ip: IpAddr) -> Option<SessionSlot> {
        let mut clients = self.clients.lock().expect("not poisoned");
        let c = clients.entry(ip).or_default();
        if c.sessions >= self.max_sessions {
            return None;
        }
        c.sessions += 1;
        Some(SessionSlot {
            limits: self.clone(),
            ip,
        })
    }

    /// Count a new message from `ip`; false when over the rate.
    pub fn allow_message(&self, ip: IpAddr) -> bool {
        self.allow(ip, self.max_messages_per_minute, |c| &mut c.messages)
    }

    /// Count a refused recipient from `ip` about to be written to a
    /// timeline; false when over the rate (it is then not written).
    pub fn allow_refusal(&self, ip: IpAddr) -> bool {
        self.allow(ip, self.max_refusals_per_minute, |c| &mut c.refusals)
    }

    /// Count one more of `count` in `ip`'s current minute, unless `max`
    /// (0: no limit) is reached.
    fn allow(&self, ip: IpAddr, max: u32, count: impl Fn(&mut Client) -> &mut u32) -> bool {
        if max == 0 {
            return true;
        }
        let now = Instant::now();
        let mut clients = self.clients.lock().expect("not poisoned");
        if clients.len() > SWEEP_ABOVE {
            clients
                .retain(|_, c| c.sessions > 0 || c.window_start.is_some_and(|t| now - t < WINDOW));
        }
        let c = clients.entry(ip).or_default();
        match c.window_start {
            Some(t) if now - t < WINDOW => {}
            _ => {
                c.window_start = Some(now);
                c.messages = 0;
                c.refusals = 0;
            }
        }
        let n = count(c);
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.clients.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_per_address_are_capped_and_released() {
        let limits = ClientLimits::new(2, 0, 0);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = limits.open_session(a).unwrap();
        let _second = limits.open_session(a).unwrap();
        assert!(limits.open_session(a).is_none());
        assert!(
            limits.open_session(b).is_some(),
            "other addresses are not affected"
        );
        drop(first);
        assert!(limits.open_session(a).is_some());
    }

    #[test]
    fn refusal_rate_per_address_is_apart_from_messages() {
        let limits = ClientLimits::new(10, 2, 3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..3).all(|_| limits.allow_refusal(a)));
        assert!(!limits.allow_refusal(a));
        assert!(limits.allow_message(a) && limits.allow_message(a));
        assert!(!limits.allow_message(a));
        assert!(limits.allow_refusal("192.0.2.2".parse().unwrap()));
    }

    #[test]
    fn message_rate_per_address() {
        let limits = ClientLimits::new(10, 3, 0);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..3).all(|_| limits.allow_message(a)));
        assert!(!limits.allow_message(a));
        assert!(limits.allow_message("192.0.2.9".parse().unwrap()));
    }

    #[test]
    fn addresses_are_forgotten() {
        let limits = ClientLimits::new(10, 0, 0);
        let slot = limits.open_session("192.0.2.1".parse().unwrap()).unwrap();
        assert_eq!(limits.remembered(), 1);
        drop(slot);
        assert_eq!(limits.remembered(), 0);
    }
}
