//! Hard-bounce suppression: a real mailbox that answers "no such user"
//! (`5.1.1`, and `5.1.2` / `5.1.10` for a domain that takes no mail) or
//! "mailbox disabled" (`5.2.1`), in a reply or in a bounce that comes back,
//! counts against its participant; enough of them and the participant is
//! undeliverable. Mail to its alias is then refused at RCPT with the same
//! `550 5.1.1` as any unknown alias, and the order's timeline and webhook
//! get a `participant.undeliverable` event, so the store can reach the
//! buyer another way. Changing the participant's address clears it.

use super::notice::status_of;
use crate::storage::HardBounce;

/// How many hard bounces make a participant undeliverable (0: never), from
/// `delivery.suppress_after_unknown` and `delivery.suppress_after_disabled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suppression {
    /// For "no such user or domain" (5.1.1, 5.1.2, 5.1.10).
    pub unknown_after: u32,
    /// For "mailbox disabled" (5.2.1): often temporary at large providers.
    pub disabled_after: u32,
}

impl Default for Suppression {
    fn default() -> Self {
        Self {
            unknown_after: 1,
            disabled_after: 3,
        }
    }
}

impl Suppression {
    /// The hard bounce a permanent failure with `reply` (a next hop's
    /// reply, or a bounce's `bounced: <status> …`) counts as, if any.
    pub fn classify(&self, reply: &str) -> Option<HardBounce> {
        let status = status_of(reply);
        let after = match status.as_str() {
            "5.1.1" | "5.1.2" | "5.1.10" => self.unknown_after,
            "5.2.1" => self.disabled_after,
            _ => return None,
        };
        (after > 0).then_some(HardBounce { status, after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_disabled_mailboxes_count() {
        let s = Suppression::default();
        let hb = s.classify("550 5.1.1 <x@ct.test>: user unknown").unwrap();
        assert_eq!((hb.status.as_str(), hb.after), ("5.1.1", 1));
        let hb = s
            .classify("550 5.1.2 the recipient's domain does not exist")
            .unwrap();
        assert_eq!(hb.status, "5.1.2");
        let hb = s
            .classify("556 5.1.10 the recipient's domain accepts no mail (null MX)")
            .unwrap();
        assert_eq!(hb.status, "5.1.10");
        let hb = s.classify("550 5.2.1 mailbox disabled").unwrap();
        assert_eq!((hb.status.as_str(), hb.after), ("5.2.1", 3));
        // A bounce's status line reads the same way.
        assert!(s
            .classify("bounced: 5.1.1 (smtp; 550 user unknown)")
            .is_some());
    }

    #[test]
    fn other_failures_do_not_count() {
        let s = Suppression::default();
        assert_eq!(s.classify("552 5.3.4 message too big"), None);
        assert_eq!(s.classify("554 5.7.1 rejected as spam"), None);
        assert_eq!(
            s.classify("550 mailbox unavailable"),
            None,
            "no status: unknown why"
        );
        assert_eq!(s.classify("450 4.1.1 try later"), None);
        assert_eq!(
            s.classify("421 4.4.2 next hop: timed out (gave up after 9 attempts)"),
            None
        );
        let off = Suppression {
            unknown_after: 0,
            disabled_after: 0,
        };
        assert_eq!(off.classify("550 5.1.1 user unknown"), None);
    }
}
