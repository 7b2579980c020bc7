//! The relay's own delivery status notification (RFC 3464): a
//! `multipart/report` telling the original sender that a delivery failed.
//! It names the recipient by alias; the reply quoted is already redacted,
//! and the returned headers are those of the masked copy.

use chrono::{DateTime, Utc};

/// What the notice reports.
pub struct FailedDelivery<'a> {
    /// This relay's name (Reporting-MTA, From).
    pub hostname: &'a str,
    /// The alias the failed delivery was for (the report names it, never the real address).
    pub rcpt_alias: &'a str,
    /// The remote reply or bounce, free of real addresses.
    pub reply: &'a str,
    /// When the original message arrived.
    pub arrival: DateTime<Utc>,
    /// The masked message as stored; only its header section is returned.
    pub original: &'a [u8],
    /// The To field: the sender's alias, when the sender is a participant.
    pub to_alias: Option<&'a str>,
}

/// The enhanced status code of `reply`, or one made from its basic code.
pub fn status_of(reply: &str) -> String {
    let words: Vec<&str> = reply
        .split(|c: char| c.is_whitespace() || c == '(' || c == ':')
        .collect();
    let enhanced = words.iter().find(|w| {
        let parts: Vec<&str> = w.split('.').collect();
        parts.len() == 3
            && matches!(parts[0], "4" | "5")
            && parts[1..]
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
    });
    match enhanced {
        Some(code) => code.to_string(),
        None if reply.starts_with('4') => "4.4.7".into(), // given up: delivery time expired
        None => "5.0.0".into(),
    }
}

fn header_section(message: &[u8]) -> &[u8] {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .unwrap_or(message.len());
    &message[..end]
}

/// Keep a quoted reply on one line of printable ASCII.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                ' '
            }
        })
        .take(900)
        .collect()
}

/// The notice's bytes, with `id` in its Message-ID and boundary.
pub fn compose(f: &FailedDelivery<'_>, id: &str, now: DateTime<Utc>) -> Vec<u8> {
    let boundary = format!("ct-relay-report-{id}");
    let reply = one_line(f.reply);
    let status = status_of(&reply);
    let to = f
        .to_alias
        .map(|a| format!("<{a}>"))
        .unwrap_or_else(|| "undisclosed-recipients:;".into());
    let mut out = format!(
        "From: Mail Delivery System <MAILER-DAEMON@{host}>\r\n\
         To: {to}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Date: {date}\r\n\
         Message-ID: <{id}@{host}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         \r\n\
         This is a delivery status notification in MIME format.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         Your message could not be delivered to <{alias}>.\r\n\
         \r\n\
         The receiving side said:\r\n\
         \x20   {reply}\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; {host}\r\n\
         Arrival-Date: {arrival}\r\n\
         \r\n\
         Final-Recipient: rfc822; {alias}\r\n\
         Action: failed\r\n\
         Status: {status}\r\n\
         Diagnostic-Code: smtp; {reply}\r\n\
         Last-Attempt-Date: {date}\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n",
        host = f.hostname,
        date = now.to_rfc2822(),
        arrival = f.arrival.to_rfc2822(),
        alias = f.rcpt_alias,
    )
    .into_bytes();
    out.extend_from_slice(header_section(f.original));
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bounce::report;

    #[test]
    fn status_codes() {
        assert_eq!(status_of("550 5.1.1 <x@ct.test>: unknown"), "5.1.1");
        assert_eq!(status_of("bounced: 5.2.2 (552 mailbox full)"), "5.2.2");
        assert_eq!(status_of("554 transaction failed"), "5.0.0");
        assert_eq!(
            status_of("451 try later (gave up after 9 attempts)"),
            "4.4.7"
        );
    }

    #[test]
    fn the_notice_is_a_report_we_can_read_back() {
        let original =
            b"From: <c2@ct.test>\r\nTo: <f4@ct.test>\r\nSubject: Hi\r\n\r\nsecret body\r\n";
        let at: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        let notice = compose(
            &FailedDelivery {
                hostname: "relay.test",
                rcpt_alias: "f4@ct.test",
                reply: "550 5.1.1 <f4@ct.test>: unknown\r\n",
                arrival: at,
                original,
                to_alias: Some("c2@ct.test"),
            },
            "01JD",
            at,
        );
        let text = String::from_utf8(notice.clone()).unwrap();
        assert!(text.contains("To: <c2@ct.test>\r\n"), "{text}");
        assert!(text.contains("Subject: Hi\r\n"));
        assert!(!text.contains("secret body"), "only headers are returned");
        let statuses = report::parse(&notice);
        assert_eq!(statuses.len(), 1);
        assert_eq!(statuses[0].final_recipient.as_deref(), Some("f4@ct.test"));
        assert_eq!(statuses[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(
            statuses[0].diagnostic.as_deref(),
            Some("550 5.1.1 <f4@ct.test>: unknown")
        );
    }
}
