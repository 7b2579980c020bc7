//! Reading a message's MIME structure with mail-parser, which panics on
//! some malformed nestings ("Invalid part ID, could not find multipart",
//! mail-parser 0.11.9, found by the `policy_input` fuzz target): a hostile
//! sender must not be able to end a session, or a delivery, that way. A
//! message the parser cannot read is treated as one it found no structure
//! in (`None`), as it already treats some others.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use mail_parser::{Message, MessageParser};

/// Messages whose parse panicked since start.
static PANICS: AtomicU64 = AtomicU64::new(0);

/// `raw` parsed, or `None` when mail-parser finds no message in it or
/// panics on it.
pub fn parse(raw: &[u8]) -> Option<Message<'_>> {
    match catch_unwind(AssertUnwindSafe(|| MessageParser::default().parse(raw))) {
        Ok(parsed) => parsed,
        Err(_) => {
            PANICS.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                bytes = raw.len(),
                "mail-parser panicked on a message: read as having no MIME structure"
            );
            None
        }
    }
}

/// Keep the panic hook in place (it prints the panic, or aborts under a
/// fuzzer) for every panic but mail-parser's, which `parse` catches and
/// reports itself. Call once, at start.
pub fn quiet_parser_panics() {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_parser = info
            .location()
            .is_some_and(|l| l.file().contains("mail-parser"));
        if !in_parser {
            hook(info);
        }
    }));
}

/// How many messages mail-parser panicked on since start.
pub fn panics() -> u64 {
    PANICS.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    /// The fuzz find (`fuzz/seeds/policy_input/mail-parser-panic`, less
    /// its three knob bytes): mail-parser 0.11.9 panics on it.
    const PANICS_MAIL_PARSER: &[u8] =
        include_bytes!("../fuzz/seeds/policy_input/mail-parser-panic");

    #[test]
    fn a_message_mail_parser_panics_on_reads_as_unstructured() {
        let raw = &PANICS_MAIL_PARSER[3..];
        let direct =
            std::panic::catch_unwind(|| mail_parser::MessageParser::default().parse(raw).is_some());
        assert!(direct.is_err(), "the input still makes mail-parser panic");
        let before = super::panics();
        assert!(super::parse(raw).is_none());
        assert_eq!(super::panics(), before + 1);
        assert!(super::parse(b"Subject: hi\r\n\r\nbody\r\n").is_some());
    }
}
