//! MIME parameter fields of the message's own header (Content-Type,
//! Content-Disposition): a participant's address in a parameter, a file
//! name above all, is masked however the parameter is written (quoted,
//! RFC 2231 `*=` encoded, split over `name*0*`, `name*1*`, …). The field is
//! first masked in place; when a parameter is split so that no piece holds
//! the whole address, the field is written again from its decoded
//! parameters, each masked, with the boundary and every other value kept.

use mail_parser::parsers::MessageStream;
use mail_parser::HeaderValue;

use super::alias_map::AliasMap;
use super::defence::{reads_clean, reads_known, Defended};
use super::section::Field;
use super::section::Parsed;
use super::text::{replace_in_file_name, replace_in_place};

pub(super) fn mask(f: &Field<'_>, aliases: &AliasMap) -> Defended {
    let ct = match MessageStream::new(f.value).parse_content_type() {
        HeaderValue::ContentType(ct) => Some(ct),
        _ => None,
    };
    let in_values = |ct: &mail_parser::ContentType<'_>| {
        ct.attributes
            .iter()
            .flatten()
            .any(|a| replace_in_file_name(&a.value, aliases) != a.value)
    };
    let named = ct.as_ref().is_some_and(in_values);
    if !named && !reads_known(f, aliases) {
        return Defended::Clean;
    }
    let replaced = replace_in_place(f.raw, aliases);
    let replaced_named = Parsed::new(&replaced).fields.first().is_some_and(|g| {
        matches!(MessageStream::new(g.value).parse_content_type(), HeaderValue::ContentType(ct) if in_values(&ct))
    });
    if !replaced_named && reads_clean(&replaced, aliases) {
        return Defended::Fixed(replaced);
    }
    let Some(ct) = ct else {
        return Defended::Remove;
    };
    let mut field = format!("{}: {}", f.name, ct.c_type);
    if let Some(sub) = &ct.c_subtype {
        field.push('/');
        field.push_str(sub);
    }
    for a in ct.attributes.iter().flatten() {
        field.push_str(";\r\n\t");
        field.push_str(&parameter(
            &a.name,
            &replace_in_file_name(&a.value, aliases),
        ));
    }
    field.push_str("\r\n");
    if reads_clean(field.as_bytes(), aliases) {
        Defended::Fixed(field.into_bytes())
    } else {
        Defended::Remove
    }
}

/// `name="value"` for printable ASCII, else RFC 2231's `name*=utf-8''…`.
fn parameter(name: &str, value: &str) -> String {
    if value.chars().all(|c| c == ' ' || c.is_ascii_graphic()) {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        return format!("{name}=\"{escaped}\"");
    }
    let mut encoded = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{name}*=utf-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> AliasMap {
        AliasMap::from([("sac@acme-store.com".to_string(), "c2db@ct.test".to_string())])
    }

    fn masked(raw: &str) -> String {
        let p = Parsed::new(raw.as_bytes());
        match mask(&p.fields[0], &map()) {
            Defended::Fixed(b) => String::from_utf8(b).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn file_names_are_masked_however_written() {
        assert_eq!(
            masked("Content-Disposition: attachment; filename=\"sac@acme-store.com\"\r\n"),
            "Content-Disposition: attachment; filename=\"c2db@ct.test\"\r\n"
        );
        assert_eq!(
            masked("Content-Disposition: attachment; filename=\"sac@acme-store.com.pdf\"\r\n"),
            "Content-Disposition: attachment;\r\n\tfilename=\"c2db@ct.test.pdf\"\r\n"
        );
        assert_eq!(
            masked(
                "Content-Disposition: attachment; filename*=utf-8''sac%40acme-store.com.pdf\r\n"
            ),
            "Content-Disposition: attachment;\r\n\tfilename=\"c2db@ct.test.pdf\"\r\n"
        );
        let split = masked(
            "Content-Type: multipart/mixed; boundary=\"b1\";\r\n name*0*=utf-8''sac%40acme; name*1*=-store.com\r\n",
        );
        assert_eq!(
            split,
            "Content-Type: multipart/mixed;\r\n\tboundary=\"b1\";\r\n\tname=\"c2db@ct.test\"\r\n"
        );
    }

    #[test]
    fn non_ascii_values_are_written_in_rfc2231_form() {
        assert_eq!(
            parameter("filename", "Nota fiscal ç.pdf"),
            "filename*=utf-8''Nota%20fiscal%20%C3%A7.pdf"
        );
    }
}
