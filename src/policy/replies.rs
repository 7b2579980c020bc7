//! The replies of the trust rules (docs/REFERENCE.md, "Trust at the door"). None
//! names an address; the attachment reply names the file.

use super::AttachmentProblem;
use crate::smtp::Reply;

/// `550 5.7.1`: the store's address, not authenticated.
pub fn unauthenticated_store() -> Reply {
    Reply::new(
        550,
        "5.7.1",
        "Message claims to come from the store but is not authenticated (no SPF or DKIM pass aligned with its From domain)",
    )
}

/// `451 4.7.0`: authentication could not be decided.
pub fn auth_undecided() -> Reply {
    Reply::new(
        451,
        "4.7.0",
        "Sender authentication could not be checked (DNS), try again later",
    )
}

/// `550 5.7.1`: spam.
pub fn spam() -> Reply {
    Reply::new(550, "5.7.1", "Message refused as spam")
}

/// `550 5.7.1`: malware, named (printable characters only).
pub fn virus(name: &str) -> Reply {
    Reply::new(
        550,
        "5.7.1",
        format!("Message contains malware ({})", printable(name)),
    )
}

/// `451 4.7.1`: greylisted.
pub fn greylisted() -> Reply {
    Reply::new(451, "4.7.1", "Greylisted, try again later")
}

/// `451 4.7.0`: the scanner gave no verdict.
pub fn scan_failed() -> Reply {
    Reply::new(
        451,
        "4.7.0",
        "Message could not be scanned, try again later",
    )
}

/// `550 5.7.1`: bulk mail to an order alias.
pub fn bulk() -> Reply {
    Reply::new(
        550,
        "5.7.1",
        "Order aliases take no bulk, list or marketing mail",
    )
}

/// `450 4.7.1`: over a rate limit.
pub fn rate_limited() -> Reply {
    Reply::new(
        450,
        "4.7.1",
        "Too much mail to this address for now, try again later",
    )
}

/// `550 5.7.1`: the sender is blocked for the order.
pub fn blocked() -> Reply {
    Reply::new(550, "5.7.1", "Sender blocked for this order")
}

/// `550 5.7.1` naming the refused file, or `552 5.3.4` past the store's limits.
pub fn attachment(problem: &AttachmentProblem) -> Reply {
    let shown = |name: &str, kind: &str| {
        if name.is_empty() {
            format!("An attachment of type {}", printable(kind))
        } else {
            format!("Attachment \"{}\"", printable(name))
        }
    };
    match problem {
        AttachmentProblem::Refused { name, kind } => Reply::new(
            550,
            "5.7.1",
            format!(
                "{} is of a type this store does not accept ({})",
                shown(name, kind),
                printable(kind)
            ),
        ),
        AttachmentProblem::Unreadable { name } => Reply::new(
            550,
            "5.7.1",
            format!(
                "{} cannot be checked (a broken, encrypted or too deeply nested archive)",
                shown(name, "archive")
            ),
        ),
        AttachmentProblem::TooMany { count, max } => Reply::new(
            552,
            "5.3.4",
            format!("Too many attachments ({count}; this store takes at most {max})"),
        ),
        AttachmentProblem::TooBig { bytes, max } => Reply::new(
            552,
            "5.3.4",
            format!("Attachments too large ({bytes} bytes; this store takes at most {max})"),
        ),
    }
}

/// Text fit for a reply line, which also goes onto the timeline: printable
/// ASCII (anything else as `?`), without quotes, bounded, and with any
/// address in it (a file named after someone) as `[address]`.
fn printable(text: &str) -> String {
    let shown: String = text
        .chars()
        .filter(|c| *c != '"')
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(80)
        .collect();
    hide_addresses(&shown)
}

fn hide_addresses(text: &str) -> String {
    let local = |c: char| c.is_ascii_alphanumeric() || "._%+-=!#$&'*/?^`{|}~".contains(c);
    let domain = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let start = rest[..at].rfind(|c: char| !local(c)).map_or(0, |i| i + 1);
        let end = rest[at + 1..]
            .find(|c: char| !domain(c))
            .map_or(rest.len(), |i| at + 1 + i);
        out.push_str(&rest[..start]);
        out.push_str("[address]");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attachment_reply_names_the_file_in_printable_ascii() {
        let r = attachment(&AttachmentProblem::Refused {
            name: "fatura\u{e7}\"\r\n.pdf.exe".into(),
            kind: "exe".into(),
        });
        assert_eq!(
            r.to_string(),
            "550 5.7.1 Attachment \"fatura???.pdf.exe\" is of a type this store does not accept (exe)\r\n"
        );
        let r = attachment(&AttachmentProblem::Refused {
            name: String::new(),
            kind: "application/x-msdownload".into(),
        });
        assert!(r
            .to_string()
            .starts_with("550 5.7.1 An attachment of type application/x-msdownload is"));
    }

    #[test]
    fn an_address_in_a_file_name_is_not_repeated() {
        let r = attachment(&AttachmentProblem::Refused {
            name: "invoice for buyer@example.com.exe".into(),
            kind: "exe".into(),
        });
        assert_eq!(
            r.to_string(),
            "550 5.7.1 Attachment \"invoice for [address]\" is of a type this store does not accept (exe)\r\n"
        );
        assert!(!hide_addresses("@@a@b x@ \"q\"@d").contains('@'));
    }
}
