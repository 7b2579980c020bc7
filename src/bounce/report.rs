//! Reading the delivery status notifications that come back to a bounce
//! address (RFC 3464, and RFC 6533's `message/global-delivery-status`).
//! Only a report that says `Action: failed` fails a delivery: an
//! auto-reply, a "delayed" warning or a success notice changes nothing.

use mail_parser::MimeHeaders;

/// One per-recipient block of a report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecipientStatus {
    /// The report's Final-Recipient, if it gave one.
    pub final_recipient: Option<String>,
    /// failed, delayed, delivered, relayed or expanded (lowercase).
    pub action: String,
    /// The enhanced status code, e.g. `5.1.1`.
    pub status: Option<String>,
    /// The remote reply, without its type (`smtp;`).
    pub diagnostic: Option<String>,
}

/// The per-recipient statuses of a DSN; empty when `message` is not one.
pub fn parse(message: &[u8]) -> Vec<RecipientStatus> {
    let Some(parsed) = crate::mime::parse(message) else {
        return Vec::new();
    };
    parsed
        .parts
        .iter()
        .filter(|part| {
            part.content_type().is_some_and(|ct| {
                ct.ctype().eq_ignore_ascii_case("message")
                    && ct.subtype().is_some_and(|s| {
                        s.eq_ignore_ascii_case("delivery-status")
                            || s.eq_ignore_ascii_case("global-delivery-status")
                    })
            })
        })
        .flat_map(|part| recipient_blocks(&String::from_utf8_lossy(part.contents())))
        .collect()
}

/// The fields of `text`: blocks of `Name: value` lines separated by blank
/// lines; the first block is about the message, the others one recipient each.
fn recipient_blocks(text: &str) -> Vec<RecipientStatus> {
    let mut blocks: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !blocks.last().is_some_and(Vec::is_empty) {
                blocks.push(Vec::new());
            }
        } else if line.starts_with([' ', '\t']) {
            // A folded line continues the previous field.
            if let Some((_, value)) = blocks.last_mut().and_then(|b| b.last_mut()) {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            let block = blocks.last_mut().expect("one block at least");
            block.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    blocks
        .into_iter()
        .skip(1)
        .filter_map(|fields| {
            let get = |name: &str| {
                fields
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            };
            let typed = |v: String| match v.split_once(';') {
                Some((_, rest)) => rest.trim().to_string(),
                None => v,
            };
            Some(RecipientStatus {
                action: get("action")?.to_ascii_lowercase(),
                final_recipient: get("final-recipient").map(typed),
                status: get("status"),
                diagnostic: get("diagnostic-code").map(typed),
            })
        })
        .collect()
}

/// The first failure in a report, as the reply to record.
pub fn failure(statuses: &[RecipientStatus]) -> Option<String> {
    statuses.iter().find(|s| s.action == "failed").map(|s| {
        let mut reply = String::from("bounced");
        if let Some(status) = &s.status {
            reply.push_str(": ");
            reply.push_str(status);
        }
        if let Some(diagnostic) = &s.diagnostic {
            reply.push_str(" (");
            reply.push_str(diagnostic);
            reply.push(')');
        }
        reply
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape Postfix sends.
    const POSTFIX_BOUNCE: &str = "From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
To: b-x@ct.test\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status;\r\n\
\tboundary=\"B1\"\r\n\
\r\n\
--B1\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
I'm sorry to have to inform you that your message could not be delivered.\r\n\
--B1\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.example.com\r\n\
Arrival-Date: Mon, 23 Nov 2026 10:00:00 +0000 (UTC)\r\n\
\r\n\
Final-Recipient: rfc822; john@example.com\r\n\
Original-Recipient: rfc822;john@example.com\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Remote-MTA: dns; inbox.example.com\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <john@example.com>: Recipient address\r\n\
\x20   rejected: User unknown\r\n\
\r\n\
--B1\r\n\
Content-Type: text/rfc822-headers\r\n\
\r\n\
Subject: hello\r\n\
--B1--\r\n";

    #[test]
    fn reads_a_failure() {
        let statuses = parse(POSTFIX_BOUNCE.as_bytes());
        assert_eq!(
            statuses,
            vec![RecipientStatus {
                final_recipient: Some("john@example.com".into()),
                action: "failed".into(),
                status: Some("5.1.1".into()),
                diagnostic: Some(
                    "550 5.1.1 <john@example.com>: Recipient address rejected: User unknown".into()
                ),
            }]
        );
        assert_eq!(
            failure(&statuses).unwrap(),
            "bounced: 5.1.1 (550 5.1.1 <john@example.com>: Recipient address rejected: User unknown)"
        );
    }

    #[test]
    fn delays_and_plain_mail_are_not_failures() {
        let delayed = POSTFIX_BOUNCE.replace("Action: failed", "Action: delayed");
        let statuses = parse(delayed.as_bytes());
        assert_eq!(statuses.len(), 1);
        assert_eq!(failure(&statuses), None);
        let vacation = "From: a@example.com\r\nSubject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\nBack Monday.\r\n";
        assert!(parse(vacation.as_bytes()).is_empty());
        assert!(parse(b"").is_empty());
    }
}
