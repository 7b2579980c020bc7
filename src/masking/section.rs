//! A message split into its header fields and its body, the way no reader
//! could read more header out of it than the masker sees.
//!
//! The header section runs to the first empty line. Readers disagree about
//! lines in it that are no header field (no colon, a name with spaces or
//! 8-bit bytes in it, a continuation line with no field before it): some
//! skip them and read on, some take them for the start of the body. So:
//! - such a line with a header field somewhere after it is dropped (and
//!   counted), and every field around it is masked as usual;
//! - such lines with no field after them start the body, and an empty line
//!   is written before them, so every reader agrees on where it starts. The
//!   body itself is passed on byte for byte.
//!
//! `From :`, the obsolete form with white space before the colon, is the
//! field `From`, as RFC 5322 section 4.5 reads it.

/// One header field as received, continuation lines included.
#[derive(Debug, Clone, Copy)]
pub struct Field<'a> {
    /// The name, without white space before the colon.
    pub name: &'a str,
    /// The whole field, name to final line break.
    pub raw: &'a [u8],
    /// After the colon, to the final line break inclusive.
    pub value: &'a [u8],
}

impl Field<'_> {
    /// Whether the field is named `name` (any case).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// A message split into header fields and the body.
#[derive(Debug)]
pub struct Parsed<'a> {
    /// The fields, in order.
    pub fields: Vec<Field<'a>>,
    /// Lines of the header section that are no header field and have a
    /// field after them: dropped from every copy.
    pub dropped: Vec<&'a [u8]>,
    /// The body, from the empty line that ends the header (when there is
    /// one) to the end.
    pub rest: &'a [u8],
    /// The body starts with lines that are no header field and no empty
    /// line stands before them: one is written there.
    pub needs_separator: bool,
}

enum Entry<'a> {
    Field(Field<'a>),
    Junk(&'a [u8]),
}

/// `name` then optional white space then `:`, name in printable ASCII:
/// the name (without the white space) and the value's offset.
fn field_start(line: &[u8]) -> Option<(&str, usize)> {
    let colon = memchr::memchr(b':', line)?;
    let name = &line[..colon];
    let trimmed_len = name
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |p| p + 1);
    let name = &name[..trimmed_len];
    if name.is_empty() || !name.iter().all(|&b| b.is_ascii_graphic()) {
        return None;
    }
    Some((std::str::from_utf8(name).ok()?, colon + 1))
}

fn is_empty_line(line: &[u8]) -> bool {
    line == b"\r\n" || line == b"\n"
}

impl<'a> Parsed<'a> {
    /// The header section of `message`, read field by field.
    pub fn new(message: &'a [u8]) -> Self {
        let mut entries: Vec<Entry<'a>> = Vec::new();
        let mut pos = 0;
        let mut body_at = message.len();
        let line_end = |from: usize| {
            memchr::memchr(b'\n', &message[from..]).map_or(message.len(), |p| from + p + 1)
        };
        while pos < message.len() {
            let mut end = line_end(pos);
            if is_empty_line(&message[pos..end]) {
                body_at = pos;
                break;
            }
            let first = &message[pos..end];
            let starts_field = !matches!(first[0], b' ' | b'\t');
            while end < message.len() && matches!(message[end], b' ' | b'\t') {
                end = line_end(end);
            }
            let raw = &message[pos..end];
            entries.push(match field_start(first).filter(|_| starts_field) {
                Some((name, value_at)) => Entry::Field(Field {
                    name,
                    raw,
                    value: &raw[value_at..],
                }),
                None => Entry::Junk(raw),
            });
            pos = end;
        }
        let last_field = entries
            .iter()
            .rposition(|e| matches!(e, Entry::Field(_)))
            .map_or(0, |p| p + 1);
        let mut fields = Vec::new();
        let mut dropped = Vec::new();
        for e in &entries[..last_field] {
            match e {
                Entry::Field(f) => fields.push(*f),
                Entry::Junk(raw) => dropped.push(*raw),
            }
        }
        let (rest, needs_separator) = match entries.get(last_field) {
            Some(Entry::Junk(first)) => {
                let at = first.as_ptr() as usize - message.as_ptr() as usize;
                (&message[at..], true)
            }
            _ => (&message[body_at.min(pos)..], false),
        };
        Parsed {
            fields,
            dropped,
            rest,
            needs_separator,
        }
    }

    /// How many fields are named `name` (any case).
    pub fn count(&self, name: &str) -> usize {
        self.fields.iter().filter(|f| f.is(name)).count()
    }

    /// The header section's size as received, dropped lines included.
    pub fn header_len(&self) -> usize {
        self.fields.iter().map(|f| f.raw.len()).sum::<usize>()
            + self.dropped.iter().map(|d| d.len()).sum::<usize>()
    }

    /// The longest entry of the header section, field or dropped line.
    pub fn longest_entry(&self) -> usize {
        let fields = self.fields.iter().map(|f| f.raw.len());
        fields
            .chain(self.dropped.iter().map(|d| d.len()))
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names<'a>(p: &Parsed<'a>) -> Vec<&'a str> {
        p.fields.iter().map(|f| f.name).collect()
    }

    #[test]
    fn fields_folding_and_body() {
        let m = b"From: a@b.test\r\nTo: c@d.test,\r\n\te@f.test\r\nSubject: x\r\n\r\nbody\r\n";
        let p = Parsed::new(m);
        assert_eq!(names(&p), ["From", "To", "Subject"]);
        assert_eq!(p.fields[1].value, b" c@d.test,\r\n\te@f.test\r\n");
        assert_eq!(p.rest, b"\r\nbody\r\n");
        assert!(!p.needs_separator && p.dropped.is_empty());
    }

    #[test]
    fn a_line_that_is_no_field_does_not_end_the_header_when_fields_follow() {
        for junk in [
            "not a header\r\n",
            "Fr om: x@y.test\r\n",
            "Fr\u{f6}m: x@y.test\r\n",
            ": no name\r\n",
        ] {
            let m = format!("Subject: x\r\n{junk}From: sac@acme-store.com\r\n\r\nbody\r\n");
            let p = Parsed::new(m.as_bytes());
            assert_eq!(names(&p), ["Subject", "From"], "{junk:?}");
            assert_eq!(p.dropped, [junk.as_bytes()]);
            assert_eq!(p.rest, b"\r\nbody\r\n");
        }
        let p = Parsed::new(b" leading: continuation\r\nFrom : sac@acme-store.com\r\n\r\n");
        assert_eq!(names(&p), ["From"]);
        assert_eq!(p.fields[0].value, b" sac@acme-store.com\r\n");
        assert_eq!(p.dropped.len(), 1);
    }

    #[test]
    fn lines_that_are_no_field_with_none_after_them_start_the_body() {
        let m = b"Subject: x\r\nHello world\r\nsecond line: of the body\r\n";
        let p = Parsed::new(m);
        // `second line` has a space in its name: not a field either.
        assert_eq!(names(&p), ["Subject"]);
        assert_eq!(p.rest, b"Hello world\r\nsecond line: of the body\r\n");
        assert!(p.needs_separator);
        let p = Parsed::new(b"");
        assert!(p.fields.is_empty() && p.rest.is_empty() && !p.needs_separator);
        let p = Parsed::new(b"Subject: no body, no empty line");
        assert_eq!(names(&p), ["Subject"]);
        assert!(p.rest.is_empty());
    }
}
