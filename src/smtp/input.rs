//! Bytes received but not yet handled, split into command lines. Bounded: a
//! line longer than the limit is reported once and the rest of it discarded.

/// RFC 5321 allows 512 octets per command line; extensions and SMTPUTF8
/// addresses go beyond, so allow what a text line may hold.
pub const MAX_COMMAND_LINE: usize = 1000;

/// The next line of command input.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A command line including its line ending.
    Command(&'a [u8]),
    /// A line over the limit (it is skipped up to its end).
    TooLong,
}

/// Bytes received and not yet read as commands or DATA, bounded.
#[derive(Debug, Default)]
pub struct InputBuffer {
    buf: Vec<u8>,
    start: usize,
    /// Inside an overlong line: drop bytes up to its LF.
    discarding: bool,
}

impl InputBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Room to read into: at most one line's worth is ever kept unconsumed.
    pub fn extend(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The bytes not read yet.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Drop the first `n` bytes, which were read.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// The next complete command line, if any.
    pub fn next_line(&mut self) -> Option<Line<'_>> {
        loop {
            let pending = &self.buf[self.start..];
            match pending.iter().position(|&b| b == b'\n') {
                Some(lf) if self.discarding => {
                    self.discarding = false;
                    self.consume(lf + 1);
                }
                Some(lf) if lf + 1 > MAX_COMMAND_LINE => {
                    self.consume(lf + 1);
                    return Some(Line::TooLong);
                }
                Some(lf) => {
                    let begin = self.start;
                    self.start += lf + 1;
                    return Some(Line::Command(&self.buf[begin..begin + lf + 1]));
                }
                None if pending.len() > MAX_COMMAND_LINE => {
                    let was_discarding = self.discarding;
                    self.discarding = true;
                    self.buf.clear();
                    self.start = 0;
                    return (!was_discarding).then_some(Line::TooLong);
                }
                None => {
                    // Compact so the buffer never holds more than one partial line.
                    if self.start > 0 {
                        self.buf.drain(..self.start);
                        self.start = 0;
                    }
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_pipelined_commands() {
        let mut b = InputBuffer::new();
        b.extend(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDA");
        assert_eq!(b.next_line(), Some(Line::Command(b"MAIL FROM:<a@b>\r\n")));
        assert_eq!(b.next_line(), Some(Line::Command(b"RCPT TO:<c@d>\r\n")));
        assert_eq!(b.next_line(), None);
        b.extend(b"TA\r\n");
        assert_eq!(b.next_line(), Some(Line::Command(b"DATA\r\n")));
    }

    #[test]
    fn overlong_line_is_reported_once_and_skipped() {
        let mut b = InputBuffer::new();
        b.extend(&[b'x'; 1500]);
        assert_eq!(b.next_line(), Some(Line::TooLong));
        b.extend(&[b'x'; 1500]);
        assert_eq!(b.next_line(), None);
        b.extend(b"xx\r\nNOOP\r\n");
        assert_eq!(b.next_line(), Some(Line::Command(b"NOOP\r\n")));
        assert!(b.pending().is_empty());
    }
}
