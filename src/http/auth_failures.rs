//! Failed authentications per client address (`api.max_auth_failures_per_minute`):
//! wrong or missing API tokens and refused console logins. An address that
//! fails that many times within a minute gets `429` on every authenticated
//! request, right token or not, until its minute is over, so guessing a
//! token costs a minute per handful of tries. Memory stays bounded.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::Extensions;

const WINDOW: Duration = Duration::from_secs(60);
/// Above this many remembered addresses, expired windows are swept.
const SWEEP_ABOVE: usize = 10_000;

/// Failed authentications per client address within a minute.
pub struct AuthFailures {
    /// 0: no limit.
    max_per_minute: u32,
    by_client: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl AuthFailures {
    /// At most `max_per_minute` failures per address (0: no limit).
    pub fn new(max_per_minute: u32) -> Self {
        Self {
            max_per_minute,
            by_client: Mutex::new(HashMap::new()),
        }
    }

    /// How many seconds (at least 1) `client` must wait, if it is over
    /// the limit: what `Retry-After` says.
    pub fn wait_for(&self, client: IpAddr) -> Option<u64> {
        if self.max_per_minute == 0 {
            return None;
        }
        let by_client = self.by_client.lock().expect("not poisoned");
        let &(start, failures) = by_client.get(&client)?;
        let left = WINDOW.checked_sub(start.elapsed())?;
        (failures >= self.max_per_minute).then_some(left.as_secs().max(1))
    }

    /// Count a failure from `client`; true when this one reached the limit.
    pub fn failed(&self, client: IpAddr) -> bool {
        if self.max_per_minute == 0 {
            return false;
        }
        let now = Instant::now();
        let mut by_client = self.by_client.lock().expect("not poisoned");
        if by_client.len() > SWEEP_ABOVE {
            by_client.retain(|_, (start, _)| now - *start < WINDOW);
        }
        let entry = by_client.entry(client).or_insert((now, 0));
        if now - entry.0 >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 == self.max_per_minute
    }

    /// Record a failed authentication from `client` and log it, naming the
    /// client; `what` says what failed ("API token", "console login").
    pub fn record(&self, client: IpAddr, what: &str) {
        crate::telemetry::auth_failure();
        if self.failed(client) {
            tracing::warn!(
                client = %client,
                limit = self.max_per_minute,
                "{what} refused; this client is refused (429) for the rest of its minute"
            );
        } else {
            tracing::info!(client = %client, "{what} refused");
        }
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.by_client.lock().unwrap().len()
    }
}

/// The client address of a request, as an extractor (see `client_of`).
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(client_of(&parts.extensions)))
    }
}

/// The client address of a request (the TCP peer; behind a proxy, the
/// proxy's). Unspecified when the server was not given it.
pub fn client_of(extensions: &Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_over_the_limit_waits_and_others_do_not() {
        let failures = AuthFailures::new(3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(!failures.failed(a) && !failures.failed(a));
        assert_eq!(failures.wait_for(a), None, "under the limit");
        assert!(failures.failed(a), "the third reaches it");
        let wait = failures.wait_for(a).unwrap();
        assert!((55..=60).contains(&wait), "{wait}");
        assert!(!failures.failed(a), "reported once");
        assert_eq!(failures.wait_for(b), None);
        assert_eq!(failures.remembered(), 1);
    }

    #[test]
    fn no_limit_remembers_nothing() {
        let failures = AuthFailures::new(0);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..100).all(|_| !failures.failed(a)));
        assert_eq!(failures.wait_for(a), None);
        assert_eq!(failures.remembered(), 0);
    }

    #[test]
    fn a_request_without_peer_is_unspecified() {
        let mut ext = Extensions::new();
        assert!(client_of(&ext).is_unspecified());
        ext.insert(ConnectInfo::<SocketAddr>("192.0.2.7:4000".parse().unwrap()));
        assert_eq!(client_of(&ext), "192.0.2.7".parse::<IpAddr>().unwrap());
    }
}
