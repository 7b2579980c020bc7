//! When to try a temporarily failed delivery again, and when to give up.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// When a deferred delivery is tried again: the wait doubles from
/// `initial` up to `max`, until `give_up_after` from the first attempt.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
    /// Counted from acceptance.
    pub give_up_after: Duration,
}

/// What to do after a temporary failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again then.
    RetryAt(DateTime<Utc>),
    /// Past `give_up_after`: the delivery fails.
    GiveUp,
}

impl RetryPolicy {
    /// `attempts` counts the attempts made so far, this one included.
    pub fn after_failure(
        &self,
        attempts: u32,
        accepted_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Next {
        let deadline = accepted_at + self.give_up_after;
        if now >= deadline {
            return Next::GiveUp;
        }
        let doublings = attempts.saturating_sub(1).min(30);
        let delay = self
            .initial
            .checked_mul(1u32 << doublings)
            .map_or(self.max, |d| d.min(self.max));
        let at = now + delay;
        // The last try happens at the deadline, not after it.
        Next::RetryAt(at.min(deadline))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_secs(60),
            max: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(5 * 86_400),
        }
    }

    #[test]
    fn doubles_from_a_minute_to_an_hour() {
        let t0: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let delays: Vec<i64> = (1..=9)
            .map(|n| match policy().after_failure(n, t0, t0) {
                Next::RetryAt(at) => (at - t0).num_seconds(),
                Next::GiveUp => -1,
            })
            .collect();
        assert_eq!(delays, vec![60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
    }

    #[test]
    fn gives_up_after_five_days() {
        let t0: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let almost = t0 + chrono::Duration::days(5) - chrono::Duration::seconds(10);
        assert_eq!(
            policy().after_failure(100, t0, almost),
            Next::RetryAt(t0 + chrono::Duration::days(5))
        );
        assert_eq!(
            policy().after_failure(100, t0, t0 + chrono::Duration::days(5)),
            Next::GiveUp
        );
    }
}
