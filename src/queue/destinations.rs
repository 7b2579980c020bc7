//! Per-destination limits for the queue runner: how many attempts one
//! destination (a recipient domain, under the mx transport) may have at
//! once, how many it may get a minute, and when it is left alone because
//! it is failing as a whole (421, no connection, timeouts, DNS trouble).
//! One slow or throttling receiver then holds its own share of the
//! workers and waits alone, while mail to the others keeps going.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::config::{DeliverySettings, Limits};
use crate::delivery::Outcome;

/// What an attempt's duration is guessed to be before one was measured.
const FIRST_GUESS: Duration = Duration::from_secs(1);
/// Deliveries postponed because their destination is busy come back no
/// sooner than this (and no later than `MAX_WAIT`).
const MIN_WAIT: Duration = Duration::from_millis(200);
const MAX_WAIT: Duration = Duration::from_secs(300);

/// Whether a delivery to a destination may start now.
#[derive(Debug)]
pub enum Gate {
    /// Yes: hold the permit for the attempt, and report how it ended.
    Go(DestinationPermit),
    /// Its destination has all the attempts it may have; one is waiting
    /// already for each of them, so this one should come back later.
    Busy(Duration),
    /// Its destination has all the attempts it may have: wait in memory.
    Wait,
    /// Not before this long: the destination is suspended after failing,
    /// or used up its rate.
    Later(Duration),
}

#[derive(Debug)]
struct State {
    limits: Limits,
    active: usize,
    /// Suspended until then, after `failures` failures in a row.
    suspended_until: Option<Instant>,
    failures: u32,
    /// The rate limit: the earliest the next attempt may start.
    next_start: Instant,
    /// Deliveries sent away while the destination was busy or limited, not
    /// yet back: the next one waits behind them.
    backlog: u32,
    /// How long attempts took lately (moving average).
    attempt_time: Duration,
}

/// The destinations this node delivers to, and their state.
pub struct Destinations {
    settings: DeliverySettings,
    states: Mutex<HashMap<String, State>>,
    /// Notified when an attempt ends (a destination may take another).
    freed: Arc<Notify>,
}

impl std::fmt::Debug for Destinations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destinations").finish_non_exhaustive()
    }
}

impl Destinations {
    /// Limits from `settings` (`destination_*`, `destinations`); suspension
    /// doubles from `retry_initial` to `retry_max`. `freed` is notified
    /// whenever an attempt ends.
    pub fn new(settings: &DeliverySettings, freed: Arc<Notify>) -> Arc<Self> {
        Arc::new(Self {
            settings: settings.clone(),
            states: Mutex::new(HashMap::new()),
            freed,
        })
    }

    /// May a delivery to `destination` start now? `waiting` counts the
    /// deliveries to it already waiting in memory.
    pub fn gate(self: &Arc<Self>, destination: &str, waiting: usize) -> Gate {
        let now = Instant::now();
        let mut states = self.states.lock().expect("destinations lock");
        let state = states
            .entry(destination.to_string())
            .or_insert_with(|| State {
                limits: self.settings.limits(destination),
                active: 0,
                suspended_until: None,
                failures: 0,
                next_start: now,
                backlog: 0,
                attempt_time: FIRST_GUESS,
            });
        if let Some(until) = state.suspended_until {
            if until > now {
                return Gate::Later(until - now);
            }
        }
        if state.active >= state.limits.concurrency {
            if waiting < state.limits.concurrency {
                return Gate::Wait;
            }
            // Its turn comes after those waiting and those sent away.
            state.backlog += 1;
            let ahead = waiting as u32 + state.backlog;
            let turns = ahead.div_ceil(state.limits.concurrency as u32);
            let wait = (state.attempt_time * turns).clamp(MIN_WAIT, MAX_WAIT);
            return Gate::Busy(wait);
        }
        if state.limits.per_minute > 0 {
            let interval = Duration::from_secs(60) / state.limits.per_minute;
            if state.next_start > now {
                state.backlog += 1;
                let wait = (state.next_start - now) + interval * state.backlog.saturating_sub(1);
                return Gate::Later(wait);
            }
            state.next_start = now.max(state.next_start) + interval;
        }
        // Nothing in flight: whatever was sent away is not ahead any more.
        state.backlog = if state.active == 0 {
            0
        } else {
            state.backlog.saturating_sub(1)
        };
        state.active += 1;
        Gate::Go(DestinationPermit {
            destinations: self.clone(),
            destination: destination.to_string(),
            started: now,
            ended: false,
        })
    }

    fn end(&self, destination: &str, started: Instant, outcome: Option<&Outcome>) {
        let mut states = self.states.lock().expect("destinations lock");
        if let Some(state) = states.get_mut(destination) {
            state.active = state.active.saturating_sub(1);
            let took = started.elapsed();
            state.attempt_time = (state.attempt_time * 3 + took) / 4;
            match outcome {
                Some(outcome) if fails_the_destination(outcome) => {
                    let now = Instant::now();
                    let suspended = state.suspended_until.is_some_and(|u| u > now);
                    if !suspended {
                        // Attempts that were in flight when it failed do
                        // not lengthen the wait.
                        state.failures += 1;
                        let doublings = (state.failures - 1).min(20);
                        let wait = self
                            .settings
                            .retry_initial
                            .checked_mul(1 << doublings)
                            .map_or(self.settings.retry_max, |w| w.min(self.settings.retry_max));
                        state.suspended_until = Some(now + wait);
                        tracing::info!(
                            destination,
                            failures = state.failures,
                            wait_ms = wait.as_millis() as u64,
                            "destination failing; its deliveries wait"
                        );
                    }
                }
                Some(_) => {
                    state.failures = 0;
                    state.suspended_until = None;
                }
                None => {}
            }
        }
        drop(states);
        self.freed.notify_one();
    }
}

/// Whether an outcome says the destination as a whole is in trouble (it
/// closed the channel with 421, could not be reached or looked up, timed
/// out: RFC 3463's 4.4.x), rather than this one recipient.
pub fn fails_the_destination(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Retry { reply } => reply.starts_with("421") || reply.contains(" 4.4."),
        _ => false,
    }
}

/// One attempt's hold on its destination; given back when dropped.
#[derive(Debug)]
pub struct DestinationPermit {
    destinations: Arc<Destinations>,
    destination: String,
    started: Instant,
    ended: bool,
}

impl DestinationPermit {
    /// The attempt ended with `outcome`: a failure of the destination as a
    /// whole suspends it; anything else it answered clears that.
    pub fn ended(mut self, outcome: &Outcome) {
        self.ended = true;
        self.destinations
            .end(&self.destination, self.started, Some(outcome));
    }
}

impl Drop for DestinationPermit {
    fn drop(&mut self) {
        if !self.ended {
            self.destinations.end(&self.destination, self.started, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &str) -> DeliverySettings {
        let text = format!("transport = \"mx\"\nretry_initial = \"1m\"\n{extra}");
        config::Config::builder()
            .add_source(config::File::from_str(&text, config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap()
    }

    fn go(gate: Gate) -> DestinationPermit {
        match gate {
            Gate::Go(permit) => permit,
            other => panic!("expected Go, got {other:?}"),
        }
    }

    #[test]
    fn each_destination_has_its_own_concurrency() {
        let d = Destinations::new(
            &settings(
                "destination_concurrency = 2\n[destinations.\"slow.test\"]\nconcurrency = 1\n",
            ),
            Arc::default(),
        );
        let a1 = go(d.gate("fast.test", 0));
        let _a2 = go(d.gate("fast.test", 0));
        assert!(matches!(d.gate("fast.test", 0), Gate::Wait));
        assert!(matches!(d.gate("fast.test", 2), Gate::Busy(_)));
        let _s1 = go(d.gate("slow.test", 0));
        assert!(matches!(d.gate("slow.test", 0), Gate::Wait));
        drop(a1);
        let _a3 = go(d.gate("fast.test", 0));
    }

    #[test]
    fn a_failing_destination_waits_alone_and_recovers() {
        let d = Destinations::new(&settings(""), Arc::default());
        let refused = Outcome::Retry {
            reply: "421 4.4.1 MX 1 at 127.0.0.2:25: cannot connect".into(),
        };
        go(d.gate("down.test", 0)).ended(&refused);
        assert!(matches!(d.gate("down.test", 0), Gate::Later(w) if w > Duration::from_secs(50)));
        go(d.gate("up.test", 0)).ended(&Outcome::Delivered {
            reply: "250 ok".into(),
        });
        // A recipient's own trouble does not suspend the destination.
        let mailbox_full = Outcome::Retry {
            reply: "452 4.2.2 mailbox full".into(),
        };
        go(d.gate("up.test", 0)).ended(&mailbox_full);
        let _ = go(d.gate("up.test", 0));
    }

    #[test]
    fn a_rate_spaces_attempts() {
        let d = Destinations::new(&settings("destination_per_minute = 60\n"), Arc::default());
        let _first = go(d.gate("r.test", 0));
        match d.gate("r.test", 0) {
            Gate::Later(w) => {
                assert!(w > Duration::from_millis(900) && w <= Duration::from_secs(1))
            }
            other => panic!("expected Later, got {other:?}"),
        }
        match d.gate("r.test", 0) {
            Gate::Later(w) => assert!(w > Duration::from_millis(1900)),
            other => panic!("expected Later, got {other:?}"),
        }
    }

    #[test]
    fn destination_failures_are_421_and_4_4_x() {
        let retry = |reply: &str| Outcome::Retry {
            reply: reply.into(),
        };
        assert!(fails_the_destination(&retry(
            "421 4.7.0 too many connections"
        )));
        assert!(fails_the_destination(&retry("451 4.4.3 MX lookup failed")));
        assert!(!fails_the_destination(&retry("450 4.2.1 greylisted")));
        assert!(!fails_the_destination(&Outcome::Failed {
            reply: "550 5.1.1 unknown".into()
        }));
    }
}
