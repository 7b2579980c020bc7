//! Rate limits that protect a buyer: how much mail one alias takes in an
//! hour, from one sender and from everyone (`[policy]`), counted over the
//! mail accepted on every node. The store's own authenticated mail and its
//! approved senders' have the `privileged_` budgets. Past a limit:
//! `450 4.7.1`, and the sender's server tries again later.

use crate::config::PolicySettings;

pub use crate::storage::RecentMail;

use super::{replies, Decision, Reason};

/// The (per sender and alias, per alias) limits that apply; 0 is no limit.
pub fn limits(settings: &PolicySettings, privileged: bool) -> (u32, u32) {
    if privileged {
        (
            settings.privileged_per_sender_and_alias_per_hour,
            settings.privileged_per_alias_per_hour,
        )
    } else {
        (
            settings.per_sender_and_alias_per_hour,
            settings.per_alias_per_hour,
        )
    }
}

/// The rate rule for one recipient alias: one more message would go past
/// a limit.
pub fn judge(recent: RecentMail, (per_sender, per_alias): (u32, u32)) -> Option<Decision> {
    let over = |count: u32, limit: u32| limit > 0 && count >= limit;
    (over(recent.from_sender, per_sender) || over(recent.total, per_alias)).then(|| {
        Decision::Later {
            reply: replies::rate_limited(),
            reason: Reason::RateLimited,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_the_mail_already_taken() {
        let limits = (20, 100);
        let recent = |total, from_sender| RecentMail { total, from_sender };
        assert_eq!(judge(recent(0, 0), limits), None);
        assert_eq!(judge(recent(99, 19), limits), None);
        assert!(judge(recent(99, 20), limits).is_some());
        assert!(judge(recent(100, 0), limits).is_some());
        // 0: no limit.
        assert_eq!(judge(recent(1_000_000, 1_000_000), (0, 0)), None);
    }

    #[test]
    fn privileged_senders_have_the_higher_budget() {
        let settings = PolicySettings::default();
        assert_eq!(limits(&settings, false), (20, 100));
        assert_eq!(limits(&settings, true), (200, 500));
    }
}
