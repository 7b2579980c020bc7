//! The bulk rule: order aliases take no newsletters or list mail. A message
//! is bulk when it carries `List-Id` (a mailing list), or `List-Unsubscribe`
//! or `Precedence: bulk|list|junk` without saying it was generated for the
//! order (`Auto-Submitted: auto-generated`, which order systems set, and to
//! which transactional senders add `List-Unsubscribe` and `Precedence:
//! bulk` to keep auto-replies away).

use crate::masking::Parsed;

/// Whether the header says bulk or list mail (`List-Id`, or `List-Unsubscribe` /
/// `Precedence: bulk|list|junk` without `Auto-Submitted: auto-generated`).
pub fn is_bulk(parsed: &Parsed<'_>) -> bool {
    let value = |name: &str| {
        parsed
            .fields
            .iter()
            .filter(|f| f.is(name))
            .map(|f| String::from_utf8_lossy(f.value).trim().to_ascii_lowercase())
            .collect::<Vec<_>>()
    };
    if !value("list-id").is_empty() {
        return true;
    }
    let generated = value("auto-submitted")
        .iter()
        .any(|v| v.starts_with("auto-generated") || v.starts_with("auto-notified"));
    if generated {
        return false;
    }
    let bulk_precedence = value("precedence").iter().any(|v| {
        matches!(
            v.split(|c: char| c == ';' || c.is_whitespace()).next(),
            Some("bulk" | "list" | "junk")
        )
    });
    bulk_precedence || !value("list-unsubscribe").is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(header: &str) -> bool {
        let m = format!("From: a@b.test\r\n{header}Subject: x\r\n\r\nbody\r\n");
        is_bulk(&Parsed::new(m.as_bytes()))
    }

    #[test]
    fn newsletters_and_lists_are_bulk() {
        assert!(bulk("List-Unsubscribe: <mailto:u@news.example>\r\n"));
        assert!(bulk("List-Id: Promo <promo.news.example>\r\n"));
        assert!(bulk("Precedence: bulk\r\n"));
        assert!(bulk("Precedence: LIST\r\n"));
        assert!(bulk("Precedence: junk\r\n"));
        // A list stays a list whatever else it says.
        assert!(bulk(
            "Auto-Submitted: auto-generated\r\nList-Id: x <x.example>\r\n"
        ));
    }

    #[test]
    fn order_mail_is_not() {
        assert!(!bulk(""));
        assert!(!bulk("Precedence: first-class\r\n"));
        assert!(!bulk("Auto-Submitted: auto-generated\r\n"));
        assert!(!bulk(
            "Auto-Submitted: auto-generated\r\nPrecedence: bulk\r\nList-Unsubscribe: <https://x.example/u>\r\n"
        ));
    }
}
