//! DATA framing: un-dot-stuffing with the strict rules that prevent SMTP
//! smuggling. Only `<CRLF>.<CRLF>` ends the message; a bare CR or LF, a NUL
//! byte, a line over 1000 octets or too many bytes make the message refused, but reading
//! continues to the real end so the rest is never taken for commands. Memory
//! is bounded by the size limit: nothing is kept once an error is seen.

/// RFC 5321 4.5.3.1.6: 1000 octets per line including CRLF.
pub const MAX_LINE: usize = 998;

/// Why DATA could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataError {
    /// Past the size limit.
    TooBig,
    /// A bare CR or LF.
    BareLineEnding,
    /// A line over 1000 octets.
    LineTooLong,
    /// A NUL byte: no text may hold one (RFC 5322 2.3, RFC 6152 for
    /// 8BITMIME), and readers disagree on where it ends a string.
    Nul,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line (after CRLF, or at the start of DATA).
    LineStart,
    /// A line that began with '.', nothing else yet.
    Dot,
    /// '.' then CR at line start: LF now ends the message.
    DotCr,
    InLine,
    /// CR inside a line; LF ends the line.
    Cr,
}

/// Reads a message from DATA bytes as they come: undoes dot-stuffing, finds
/// the end (`<CRLF>.<CRLF>` only) and holds the message to its limits.
#[derive(Debug)]
pub struct DataReader {
    max_size: usize,
    body: Vec<u8>,
    state: State,
    line_len: usize,
    error: Option<DataError>,
    done: bool,
}

impl DataReader {
    /// A reader for a message of at most `max_size` bytes.
    pub fn new(max_size: usize) -> Self {
        Self {
            max_size,
            body: Vec::new(),
            state: State::LineStart,
            line_len: 0,
            error: None,
            done: false,
        }
    }

    /// True once the final `.` was read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Consume bytes up to and including the end of DATA. Returns how many
    /// were consumed; anything after that is the client's next command.
    pub fn feed(&mut self, input: &[u8]) -> usize {
        let mut i = 0;
        while i < input.len() && !self.done {
            let b = input[i];
            i += 1;
            match self.state {
                State::LineStart if b == b'.' => self.state = State::Dot,
                State::Dot if b == b'\r' => self.state = State::DotCr,
                State::DotCr if b == b'\n' => self.done = true,
                State::DotCr => {
                    // ".<CR>x": the CR was bare.
                    self.fail(DataError::BareLineEnding);
                    self.state = State::InLine;
                    self.content(b);
                }
                State::Cr if b == b'\n' => {
                    self.push(b"\r\n");
                    self.line_len = 0;
                    self.state = State::LineStart;
                }
                State::Cr => {
                    self.fail(DataError::BareLineEnding);
                    self.state = State::InLine;
                    self.content(b);
                }
                // A leading dot is dropped (dot-stuffing); the byte after it is content.
                State::Dot | State::LineStart | State::InLine => {
                    self.state = State::InLine;
                    // Fast path: copy the run of plain bytes up to the next CR or LF.
                    let run_end = input[i - 1..]
                        .iter()
                        .position(|&c| c == b'\r' || c == b'\n')
                        .map_or(input.len(), |p| i - 1 + p);
                    if run_end > i - 1 {
                        self.text(&input[i - 1..run_end]);
                        i = run_end;
                    } else {
                        self.content(b);
                    }
                }
            }
        }
        i
    }

    /// One CR or LF inside a line.
    fn content(&mut self, b: u8) {
        match b {
            b'\r' => self.state = State::Cr,
            b'\n' => self.fail(DataError::BareLineEnding),
            _ => self.text(&[b]),
        }
    }

    /// A run of bytes inside a line. The error is the one the first byte
    /// over a limit breaks, as if the bytes came one at a time, so it does
    /// not depend on where the network split the run.
    fn text(&mut self, run: &[u8]) {
        let line_room = MAX_LINE.saturating_sub(self.line_len);
        self.line_len += run.len();
        if self.error.is_some() {
            return;
        }
        let size_room = self.max_size.saturating_sub(self.body.len());
        let nul = memchr::memchr(0, run).unwrap_or(usize::MAX);
        if nul < line_room.min(size_room) {
            self.fail(DataError::Nul);
        } else if run.len() > line_room && line_room <= size_room {
            self.fail(DataError::LineTooLong);
        } else if run.len() > size_room {
            self.fail(DataError::TooBig);
        } else {
            self.body.extend_from_slice(run);
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if self.body.len() + bytes.len() > self.max_size {
            self.fail(DataError::TooBig);
            return;
        }
        self.body.extend_from_slice(bytes);
    }

    fn fail(&mut self, e: DataError) {
        if self.error.is_none() {
            self.error = Some(e);
            self.body = Vec::new();
        }
    }

    /// The message, once `is_done`.
    pub fn finish(self) -> Result<Vec<u8>, DataError> {
        debug_assert!(self.done);
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &[u8]) -> (Result<Vec<u8>, DataError>, usize) {
        let mut r = DataReader::new(10_000);
        let used = r.feed(input);
        assert!(
            r.is_done(),
            "not done: {:?}",
            String::from_utf8_lossy(input)
        );
        (r.finish(), used)
    }

    #[test]
    fn plain_message_and_leftover() {
        let input = b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n";
        let (body, used) = read(input);
        assert_eq!(body.unwrap(), b"Subject: x\r\n\r\nhello\r\n");
        assert_eq!(&input[used..], b"QUIT\r\n");
    }

    /// The smtp-proto edge: a first body line of "." ends DATA (empty message)
    /// and a first line of ".." is a stuffed ".".
    #[test]
    fn first_line_dot_and_double_dot() {
        assert_eq!(read(b".\r\n").0.unwrap(), b"");
        assert_eq!(read(b"..\r\n.\r\n").0.unwrap(), b".\r\n");
        assert_eq!(read(b"..x\r\n..\r\n.\r\n").0.unwrap(), b".x\r\n.\r\n");
    }

    #[test]
    fn byte_at_a_time_gives_the_same_result() {
        let input = b"a\r\n..b\r\n\r\n.\r\nNOOP\r\n";
        let mut r = DataReader::new(100);
        let mut used = 0;
        for chunk in input.chunks(1) {
            if r.is_done() {
                break;
            }
            used += r.feed(chunk);
        }
        assert_eq!(&input[used..], b"NOOP\r\n");
        assert_eq!(r.finish().unwrap(), b"a\r\n.b\r\n\r\n");
    }

    /// Read `input` whole, then in 200 random splittings into pieces of at
    /// most `piece` bytes: every reading gives the same result and stops
    /// before "NEXT".
    fn assert_chunking_does_not_matter(input: &[u8], max_size: usize, piece: usize) {
        // A small deterministic generator: no dependency, same cases each run.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize + 1
        };
        let mut whole = DataReader::new(max_size);
        let used = whole.feed(input);
        let expected = (whole.finish(), used);
        for _ in 0..200 {
            let mut r = DataReader::new(max_size);
            let mut used = 0;
            while !r.is_done() && used < input.len() {
                let end = (used + next(piece)).min(input.len());
                used += r.feed(&input[used..end]);
            }
            assert_eq!(
                (r.finish(), used),
                expected,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(&input[expected.1..], b"NEXT");
    }

    /// However the network splits the bytes, the outcome is the same.
    #[test]
    fn any_chunking_gives_the_same_result() {
        let inputs: [&[u8]; 5] = [
            b"Subject: x\r\n\r\n..a\r\n.b\r\n\r\n.\r\nNEXT",
            b"a\nb\r\n.\r\nNEXT",
            b"a\r\r\n.\r\nNEXT",
            b".\r\nNEXT",
            b"x\r\n.\rx\r\n.\r\nNEXT",
        ];
        for input in inputs {
            assert_chunking_does_not_matter(input, 100, 4);
        }
    }

    /// A long line in a big message: the limit its first byte over breaks
    /// names the error, whether the line arrives in one read or several
    /// (the fuzzer found a split that turned "line too long" into "too big").
    #[test]
    fn the_first_limit_broken_names_the_error_however_the_line_is_split() {
        let input = [
            b"a".repeat(900),
            b"\r\n".to_vec(),
            b"b".repeat(1200),
            b"\r\n.\r\nNEXT".to_vec(),
        ]
        .concat();
        let error_with = |max_size| {
            let mut r = DataReader::new(max_size);
            r.feed(&input);
            r.finish().unwrap_err()
        };
        // Over 1500 bytes at the 599th "b", over 998 in the line at the 999th.
        assert_eq!(error_with(1500), DataError::TooBig);
        // With room for the whole message, the line length is what fails.
        assert_eq!(error_with(3000), DataError::LineTooLong);
        // Both limits at the same byte: one at a time, the line is checked first.
        assert_eq!(error_with(902 + 998), DataError::LineTooLong);
        for max_size in [1500, 3000, 902 + 998] {
            assert_chunking_does_not_matter(&input, max_size, 700);
        }
    }

    #[test]
    fn bare_lf_never_ends_data_and_is_refused() {
        let input = b"a\n.\nMAIL FROM:<x@y>\r\n.\r\n";
        let (body, used) = read(input);
        assert_eq!(body.unwrap_err(), DataError::BareLineEnding);
        assert_eq!(used, input.len());
    }

    #[test]
    fn nul_is_refused_wherever_the_network_splits() {
        let message = b"Subject: x\r\n\r\nab\0cd\r\n.\r\n";
        for split in 0..message.len() {
            let mut r = DataReader::new(1000);
            r.feed(&message[..split]);
            r.feed(&message[split..]);
            assert!(r.is_done());
            assert_eq!(r.finish().unwrap_err(), DataError::Nul, "split at {split}");
        }
        // A line over the limit before the NUL: that is the first problem.
        let long = [vec![b'a'; MAX_LINE + 5], b"\0\r\n.\r\n".to_vec()].concat();
        let mut r = DataReader::new(10_000);
        r.feed(&long);
        assert_eq!(r.finish().unwrap_err(), DataError::LineTooLong);
    }

    #[test]
    fn bare_cr_is_refused() {
        assert_eq!(
            read(b"a\rb\r\n.\r\n").0.unwrap_err(),
            DataError::BareLineEnding
        );
        assert_eq!(
            read(b"a\r\n.\rx\r\n.\r\n").0.unwrap_err(),
            DataError::BareLineEnding
        );
        // "\r\n.\r" then bare LF must not end it either
        assert_eq!(
            read(b"a\r\n.\n\r\n.\r\n").0.unwrap_err(),
            DataError::BareLineEnding
        );
    }

    #[test]
    fn long_lines_and_big_messages_are_refused_after_the_end() {
        let long = [b"a".repeat(999), b"\r\n.\r\n".to_vec()].concat();
        assert_eq!(read(&long).0.unwrap_err(), DataError::LineTooLong);
        let ok = [b"a".repeat(998), b"\r\n.\r\n".to_vec()].concat();
        assert!(read(&ok).0.is_ok());
        let mut r = DataReader::new(10);
        r.feed(b"0123456789abc\r\n.\r\n");
        assert!(r.is_done());
        assert_eq!(r.finish().unwrap_err(), DataError::TooBig);
    }
}
