//! What happens to each header field, by name. Every field not named here
//! is still read by the last line of defence (`mask::defend`), which masks
//! any participant's address it finds and counts it, so that a new rule can
//! be written for the field.

/// What a field's name says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    /// An address list or mailbox: each participant's address becomes its
    /// alias, display names kept. `replies` when the field directs where
    /// the reader's program sends replies, receipts or bounces: unknown
    /// addresses there become contacts, so those come back through the relay.
    Addresses {
        /// The field directs replies, receipts or bounces.
        replies: bool,
    },
    /// Envelope trace of an earlier delivery (RFC 5321 4.4: only final
    /// delivery adds Return-Path): removed from every copy.
    Envelope,
    /// Another host's verdict about the sender (Authentication-Results,
    /// Received-SPF): removed when it names a participant, since masked it
    /// would vouch for the alias, or when it claims the relay's own
    /// authserv-id (RFC 8601 section 5).
    Verdict,
    /// One of an earlier hop's ARC sets: any change breaks every seal, so
    /// all of them are removed when any names a participant.
    ArcSet,
    /// Bound to the address by a signature or a key (DKIM-Signature's
    /// `i=`, Autocrypt's `addr=`): removed when it names a participant.
    Signed,
    /// Message ids (Message-ID, In-Reply-To, References): an id holding a
    /// participant's address is rewritten to one masked id for it.
    MessageIds,
    /// MIME parameters (Content-Type, Content-Disposition), RFC 2231
    /// continuations and encodings included.
    Parameters,
    /// Trace and list fields (Received, List-*): their addresses are
    /// masked as a rule, not counted as leaks.
    Trace,
    /// Anything else, left to the last line of defence.
    Other,
}

const ADDRESS_FIELDS: &[&str] = &[
    "to",
    "cc",
    "bcc",
    "resent-to",
    "resent-cc",
    "resent-bcc",
    "x-sender",
    "x-original-from",
    "x-original-sender",
    "x-original-cc",
    "original-from",
    "original-sender",
    "apparently-to",
    "x-beenthere",
    "x-failed-recipients",
    "x-forwarded-to",
    "x-loop",
];

/// Fields a reader's mail program answers to: a reply, a read receipt, a
/// bounce, a follow-up.
pub const REPLY_FIELDS: &[&str] = &[
    "from",
    "sender",
    "reply-to",
    "resent-from",
    "resent-sender",
    "resent-reply-to",
    "mail-followup-to",
    "mail-reply-to",
    "disposition-notification-to",
    "return-receipt-to",
    "x-confirm-reading-to",
    "read-receipt-to",
    "errors-to",
];

const ENVELOPE_FIELDS: &[&str] = &[
    "return-path",
    "delivered-to",
    "x-original-to",
    "x-delivered-to",
    "envelope-to",
    "x-envelope-to",
    "x-envelope-from",
    "x-apparently-to",
    "x-rcpt-to",
];

const VERDICT_FIELDS: &[&str] = &[
    "authentication-results",
    "received-spf",
    "x-original-authentication-results",
];

const ARC_FIELDS: &[&str] = &[
    "arc-seal",
    "arc-message-signature",
    "arc-authentication-results",
];

const SIGNED_FIELDS: &[&str] = &[
    "dkim-signature",
    "x-google-dkim-signature",
    "domainkey-signature",
    "autocrypt",
];

const ID_FIELDS: &[&str] = &[
    "message-id",
    "in-reply-to",
    "references",
    "resent-message-id",
];

const PARAMETER_FIELDS: &[&str] = &["content-type", "content-disposition"];

const TRACE_FIELDS: &[&str] = &[
    "received",
    "x-received",
    "list-post",
    "list-help",
    "list-subscribe",
    "list-unsubscribe",
    "list-owner",
    "list-archive",
    "list-id",
];

/// Names the last line of defence counts leaks under; any other field
/// counts as `other`, so a sender cannot grow the metric's label set.
const COUNTED_AS_ITSELF: &[&str] = &[
    "subject",
    "comments",
    "keywords",
    "organization",
    "thread-topic",
    "x-mailer",
    "user-agent",
    "x-ms-exchange-organization-authas",
    "x-original-message-id",
    "original-recipient",
    "original-message-id",
    "x-forwarded-for",
];

fn one_of(name: &str, names: &[&str]) -> bool {
    names.iter().any(|n| name.eq_ignore_ascii_case(n))
}

/// What masking does to the field `name` (any case).
pub fn treatment(name: &str) -> Treatment {
    if one_of(name, REPLY_FIELDS) {
        Treatment::Addresses { replies: true }
    } else if one_of(name, ADDRESS_FIELDS) {
        Treatment::Addresses { replies: false }
    } else if one_of(name, ENVELOPE_FIELDS) {
        Treatment::Envelope
    } else if one_of(name, VERDICT_FIELDS) {
        Treatment::Verdict
    } else if one_of(name, ARC_FIELDS) {
        Treatment::ArcSet
    } else if one_of(name, SIGNED_FIELDS) {
        Treatment::Signed
    } else if one_of(name, ID_FIELDS) {
        Treatment::MessageIds
    } else if one_of(name, PARAMETER_FIELDS) {
        Treatment::Parameters
    } else if one_of(name, TRACE_FIELDS) {
        Treatment::Trace
    } else {
        Treatment::Other
    }
}

/// Whether readers take the field for an address list: the address fields,
/// and the List-* fields mail-parser reads as such.
pub fn read_as_addresses(name: &str) -> bool {
    matches!(treatment(name), Treatment::Addresses { .. })
        || name
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case("list-"))
}

/// Whether unknown addresses in this field become contacts.
pub fn directs_replies(name: &str) -> bool {
    one_of(name, REPLY_FIELDS)
}

/// The metric label a field's leak is counted under: its name, lowercase,
/// when it is one the relay knows; `other` otherwise.
pub fn leak_label(name: &str) -> &'static str {
    [
        ADDRESS_FIELDS,
        REPLY_FIELDS,
        ID_FIELDS,
        PARAMETER_FIELDS,
        TRACE_FIELDS,
        COUNTED_AS_ITSELF,
    ]
    .iter()
    .flat_map(|names| names.iter())
    .find(|n| name.eq_ignore_ascii_case(n))
    .copied()
    .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_matched_without_case() {
        assert_eq!(treatment("FROM"), Treatment::Addresses { replies: true });
        assert_eq!(
            treatment("Resent-To"),
            Treatment::Addresses { replies: false }
        );
        assert_eq!(treatment("Return-Path"), Treatment::Envelope);
        assert_eq!(treatment("ARC-Seal"), Treatment::ArcSet);
        assert_eq!(treatment("DKIM-Signature"), Treatment::Signed);
        assert_eq!(treatment("references"), Treatment::MessageIds);
        assert_eq!(treatment("X-Whatever"), Treatment::Other);
        assert!(directs_replies("Disposition-Notification-To"));
        assert!(!directs_replies("To"));
    }

    #[test]
    fn leak_labels_are_a_closed_set() {
        assert_eq!(leak_label("Subject"), "subject");
        assert_eq!(leak_label("X-Made-Up-By-A-Sender"), "other");
    }
}
