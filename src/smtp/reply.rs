//! SMTP replies as values: the ones ct-relay sends, and the ones the next
//! hop sends back to its delivery client. Every reply the relay sends is
//! built here (the policy's in `policy::replies`), so the codes of
//! docs/REFERENCE.md ("SMTP replies") live in one place; text is made at
//! the edge.

use std::borrow::Cow;
use std::fmt;

/// One SMTP reply: a code, an enhanced status code when there is one, and
/// its lines of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code.
    pub code: u16,
    /// Enhanced status code (RFC 3463), e.g. "5.1.1"; absent on greetings
    /// and EHLO, and on replies from servers that do not give one.
    pub status: Option<Cow<'static, str>>,
    /// One entry per line; multi-line replies use `code-` continuation.
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply with an enhanced status code.
    pub fn new(code: u16, status: &'static str, text: impl Into<String>) -> Self {
        Self {
            code,
            status: Some(Cow::Borrowed(status)),
            lines: vec![text.into()],
        }
    }

    /// A reply read from another server (its lines already joined).
    pub fn received(code: u16, status: Option<String>, text: String) -> Self {
        Self {
            code,
            status: status.map(Cow::Owned),
            lines: vec![text],
        }
    }

    /// 2xx or 3xx: the command went through.
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// The reply as one line of text, `250 2.0.0 Ok: queued`: how logs,
    /// the timeline's `last_reply` and the relay's reports quote it.
    pub fn one_line(&self) -> String {
        let mut text = self.code.to_string();
        if let Some(status) = &self.status {
            text.push(' ');
            text.push_str(status);
        }
        for line in &self.lines {
            text.push(' ');
            text.push_str(line);
        }
        text.trim_end().to_string()
    }

    fn plain(code: u16, lines: Vec<String>) -> Self {
        Self {
            code,
            status: None,
            lines,
        }
    }

    /// 5xx: the client must not try again.
    pub fn is_permanent_error(&self) -> bool {
        self.code >= 500
    }

    /// `220 <hostname> ESMTP`.
    pub fn greeting(hostname: &str) -> Self {
        Self::plain(220, vec![format!("{hostname} ESMTP")])
    }
    /// `starttls`: offer STARTTLS (a certificate is configured and TLS is
    /// not on yet).
    pub fn ehlo(hostname: &str, max_size: usize, starttls: bool) -> Self {
        let mut lines = vec![
            hostname.to_string(),
            "PIPELINING".into(),
            format!("SIZE {max_size}"),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
        ];
        if starttls {
            lines.push("STARTTLS".into());
        }
        Self::plain(250, lines)
    }
    /// `220 2.0.0`: go on with the TLS handshake.
    pub fn ready_for_tls() -> Self {
        Self::new(220, "2.0.0", "Ready to start TLS")
    }
    /// `250 <hostname>`, the answer to HELO.
    pub fn helo(hostname: &str) -> Self {
        Self::plain(250, vec![hostname.to_string()])
    }
    /// `250 2.0.0 Ok`.
    pub fn ok() -> Self {
        Self::new(250, "2.0.0", "Ok")
    }
    /// `250 2.1.0`: sender taken.
    pub fn sender_ok() -> Self {
        Self::new(250, "2.1.0", "Ok")
    }
    /// `250 2.1.5`: recipient taken.
    pub fn recipient_ok() -> Self {
        Self::new(250, "2.1.5", "Ok")
    }
    /// `354`: send the message.
    pub fn start_data() -> Self {
        Self::plain(354, vec!["End data with <CR><LF>.<CR><LF>".into()])
    }
    /// `250 2.0.0 Ok: queued as <id>`, after the commit.
    pub fn queued(id: &str) -> Self {
        Self::new(250, "2.0.0", format!("Ok: queued as {id}"))
    }
    /// `221 2.0.0`, the answer to QUIT.
    pub fn bye() -> Self {
        Self::new(221, "2.0.0", "Bye")
    }
    /// `214`, the answer to HELP.
    pub fn help() -> Self {
        Self::new(214, "2.0.0", "See RFC 5321")
    }
    /// `252 2.5.2`: VRFY is not answered.
    pub fn cannot_vrfy() -> Self {
        Self::new(
            252,
            "2.5.2",
            "Cannot VRFY user; send mail and it will be handled",
        )
    }
    /// `503 5.5.1`: a command out of order.
    pub fn bad_sequence(text: &str) -> Self {
        Self::new(503, "5.5.1", format!("Bad sequence of commands: {text}"))
    }
    /// `500 5.5.2`: an unknown command.
    pub fn unknown_command() -> Self {
        Self::new(500, "5.5.2", "Command unrecognized")
    }
    /// `500 5.5.2`: a command line too long.
    pub fn line_too_long() -> Self {
        Self::new(500, "5.5.2", "Line too long")
    }
    /// `501 5.5.4`: bad syntax.
    pub fn syntax_error(text: &str) -> Self {
        Self::new(501, "5.5.4", format!("Syntax error: {text}"))
    }
    /// `502 5.5.1`: a command not implemented.
    pub fn not_implemented() -> Self {
        Self::new(502, "5.5.1", "Command not implemented")
    }
    /// `450 4.7.1`: too many recipients refused from this address this minute.
    pub fn refusals_throttled() -> Self {
        Self::new(
            450,
            "4.7.1",
            "Too many refused recipients from your address; try again later",
        )
    }
    /// `555 5.5.4`: a MAIL or RCPT parameter of an extension EHLO did not
    /// offer.
    pub fn unadvertised_parameter(name: &str) -> Self {
        Self::new(555, "5.5.4", format!("{name} not supported here"))
    }
    /// `550 5.7.1`: not under the alias domain.
    pub fn relaying_denied() -> Self {
        Self::new(550, "5.7.1", "Relaying denied")
    }
    /// One text for unknown, expired and disabled aliases, so none is told apart.
    pub fn unknown_alias() -> Self {
        Self::new(550, "5.1.1", "Recipient address rejected: no such alias")
    }
    /// `452 4.5.3`: too many recipients.
    pub fn too_many_recipients() -> Self {
        Self::new(452, "4.5.3", "Too many recipients")
    }
    /// `451 4.3.0`: the database is unavailable.
    pub fn storage_unavailable() -> Self {
        Self::new(451, "4.3.0", "Temporary storage failure, try again later")
    }
    /// `552 5.3.4`: the message is too big.
    pub fn too_big() -> Self {
        Self::new(552, "5.3.4", "Message size exceeds fixed limit")
    }
    /// `552 5.3.4`: a header field or the header is too big.
    pub fn header_too_big() -> Self {
        Self::new(
            552,
            "5.3.4",
            "Message header exceeds fixed limit (32 KiB a field, 256 KiB in all, encoded words that end)",
        )
    }
    /// `554 5.6.0`: a bare CR or LF in DATA.
    pub fn bad_line_ending() -> Self {
        Self::new(
            554,
            "5.6.0",
            "Bare CR or LF in message; lines must end with CRLF",
        )
    }
    /// `554 5.6.0`: DATA held no message.
    pub fn empty_message() -> Self {
        Self::new(554, "5.6.0", "Message is empty")
    }
    /// `554 5.6.0`: a NUL byte in DATA.
    pub fn nul_in_data() -> Self {
        Self::new(554, "5.6.0", "NUL byte in message; it is not text")
    }
    /// `554 5.6.0`: a DATA line over 1000 octets.
    pub fn data_line_too_long() -> Self {
        Self::new(554, "5.6.0", "Message line longer than 1000 octets")
    }
    /// `550 5.7.1`: DMARC `p=reject` and the message fails it.
    pub fn dmarc_reject() -> Self {
        Self::new(
            550,
            "5.7.1",
            "Message rejected: it fails the DMARC policy (p=reject) of its sender's domain",
        )
    }
    /// `554 5.4.6`: a mail loop.
    pub fn mail_loop() -> Self {
        Self::new(
            554,
            "5.4.6",
            "Mail loop detected: too many Received headers",
        )
    }
    /// `421 4.4.2`: idle too long.
    pub fn idle_timeout(hostname: &str) -> Self {
        Self::new(
            421,
            "4.4.2",
            format!("{hostname} Idle timeout, closing connection"),
        )
    }
    /// `421 4.7.0`: too many errors.
    pub fn too_many_errors(hostname: &str) -> Self {
        Self::new(
            421,
            "4.7.0",
            format!("{hostname} Too many errors, closing connection"),
        )
    }
    /// `421 4.7.0`: too many commands.
    pub fn too_many_commands(hostname: &str) -> Self {
        Self::new(
            421,
            "4.7.0",
            format!("{hostname} Too many commands, closing connection"),
        )
    }
    /// `421 4.7.0`: too many sessions from this address.
    pub fn too_many_connections(hostname: &str) -> Self {
        Self::new(
            421,
            "4.7.0",
            format!("{hostname} Too many connections from your address, try again later"),
        )
    }
    /// `421 4.4.2`: the session lasted too long.
    pub fn session_too_long(hostname: &str) -> Self {
        Self::new(
            421,
            "4.4.2",
            format!("{hostname} Session too long, closing connection"),
        )
    }
    /// A client that sends before the greeting is not speaking SMTP.
    pub fn early_talker(hostname: &str) -> Self {
        Self::new(
            554,
            "5.5.1",
            format!("{hostname} Protocol error: commands sent before the greeting"),
        )
    }
    /// `450 4.7.1`: too many messages from this address this minute.
    pub fn message_rate_exceeded() -> Self {
        Self::new(
            450,
            "4.7.1",
            "Too many messages from your address, try again later",
        )
    }
    /// `421 4.3.2`: the relay is stopping.
    pub fn shutting_down(hostname: &str) -> Self {
        Self::new(
            421,
            "4.3.2",
            format!("{hostname} Service shutting down, try again later"),
        )
    }

    /// The reply on the wire, CRLF-terminated.
    pub fn to_wire(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            match &self.status {
                Some(status) => write!(f, "{}{sep}{status} {line}\r\n", self.code)?,
                None => write!(f, "{}{sep}{line}\r\n", self.code)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_single_and_multi_line() {
        assert_eq!(
            Reply::unknown_alias().to_string(),
            "550 5.1.1 Recipient address rejected: no such alias\r\n"
        );
        assert_eq!(
            Reply::ehlo("mx.test", 1000, false).to_string(),
            "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 ENHANCEDSTATUSCODES\r\n"
        );
        assert!(Reply::ehlo("mx.test", 1000, true)
            .to_string()
            .ends_with("250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n"));
        assert_eq!(
            Reply::greeting("mx.test").to_string(),
            "220 mx.test ESMTP\r\n"
        );
    }

    #[test]
    fn received_replies_read_as_one_line() {
        let r = Reply::received(451, Some("4.3.0".into()), "try later".into());
        assert_eq!(r.one_line(), "451 4.3.0 try later");
        assert!(!r.is_positive() && !r.is_permanent_error());
        let plain = Reply::received(250, None, "ok".into());
        assert_eq!(plain.one_line(), "250 ok");
        assert!(plain.is_positive());
        assert_eq!(
            Reply::unknown_alias().one_line(),
            "550 5.1.1 Recipient address rejected: no such alias"
        );
    }
}
