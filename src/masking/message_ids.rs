//! Message ids (Message-ID, In-Reply-To, References, Resent-Message-ID):
//! an id holding a participant's address (`<abc.sac@acme-store.com>`)
//! becomes a masked id. The masked id is a keyed hash of the id alone, so
//! every copy of every message that names the id names the same masked id
//! and threads still join. Other ids, and the rest of the field, stay.

use super::alias_map::AliasMap;
use super::finder;
use super::section::Field;

/// The field with its ids masked, or `None` when no id holds a known
/// address. `masked_id` gives the masked id (without angle brackets) of an
/// id (without them).
pub(super) fn mask(
    f: &Field<'_>,
    aliases: &AliasMap,
    masked_id: &dyn Fn(&str) -> String,
) -> Option<Vec<u8>> {
    let value = f.value;
    let mut out = Vec::with_capacity(f.raw.len());
    let mut copied = 0;
    let mut i = 0;
    while let Some(open) = memchr::memchr(b'<', &value[i..]).map(|p| i + p) {
        let Some(close) = memchr::memchr2(b'>', b'<', &value[open + 1..]).map(|p| open + 1 + p)
        else {
            break;
        };
        i = close;
        if value[close] != b'>' {
            continue;
        }
        let id = &value[open + 1..close];
        if holds_known(id, aliases) {
            let text = String::from_utf8_lossy(id);
            out.extend_from_slice(&value[copied..open + 1]);
            out.extend_from_slice(masked_id(text.trim()).as_bytes());
            copied = close;
        }
        i = close + 1;
    }
    if copied == 0 {
        return None;
    }
    out.extend_from_slice(&value[copied..]);
    let mut field = format!("{}:", f.name).into_bytes();
    field.extend_from_slice(&out);
    Some(field)
}

/// An id holds a participant's address when the address is written in it,
/// standing alone or as the tail of its left part (`abc.sac@…`).
fn holds_known(id: &[u8], aliases: &AliasMap) -> bool {
    let lower = id.to_ascii_lowercase();
    finder::holds_known(id, aliases)
        || aliases.known().iter().any(|k| {
            let address = format!("{}@{}", k.local, k.domain);
            memchr::memmem::find(&lower, address.as_bytes()).is_some()
        })
}

#[cfg(test)]
mod tests {
    use super::super::section::Parsed;
    use super::*;

    fn map() -> AliasMap {
        AliasMap::from([("sac@acme-store.com".to_string(), "c2db@ct.test".to_string())])
    }

    fn masked(raw: &str) -> Option<String> {
        let p = Parsed::new(raw.as_bytes());
        let id = |id: &str| format!("m.{}@ct.test", id.len());
        mask(&p.fields[0], &map(), &id).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn ids_holding_an_address_are_masked_and_the_rest_stays() {
        assert_eq!(
            masked("Message-ID: <abc.sac@acme-store.com>\r\n").as_deref(),
            Some("Message-ID: <m.22@ct.test>\r\n")
        );
        assert_eq!(
            masked("References: <a@x.test>\r\n <1.SAC@Acme-Store.com> (old)\r\n").as_deref(),
            Some("References: <a@x.test>\r\n <m.20@ct.test> (old)\r\n")
        );
        assert_eq!(masked("Message-ID: <1234@acme-store.com>\r\n"), None);
        assert_eq!(
            masked("In-Reply-To: <unclosed sac@acme-store.com\r\n"),
            None
        );
    }
}
