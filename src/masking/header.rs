//! The header section of one order's copy: every field put through its
//! rule (`rules`), then the last line of defence, so that no participant's
//! real address survives anywhere in it. The body is never touched.

use super::alias_map::AliasMap;
use super::defence::{defend, reads_known, Defended};
use super::rules::{leak_label, treatment, Treatment};
use super::section::{Field, Parsed};
use super::{address_fields, message_ids, params};

/// What masking needs besides the message: the order's participants, how
/// to mask a message id, and the relay's own authserv-id.
pub struct Masker<'a> {
    /// Every participant's address, with its alias.
    pub aliases: &'a AliasMap,
    /// The masked id (without angle brackets) for an id that holds a
    /// participant's address; the same id must always give the same one.
    pub masked_id: &'a dyn Fn(&str) -> String,
    /// The relay's hostname, which its own Authentication-Results carry:
    /// such a field arriving from outside is forged (RFC 8601 section 5).
    pub authserv_id: &'a str,
    /// Remove every ARC field: the chain did not validate on arrival, and
    /// the relay's own set starts a new one.
    pub drop_arc: bool,
}

/// What masking did beyond rewriting address fields, for the metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// One entry per field removed: why (`envelope`, `verdict`, `arc`,
    /// `signature`, `unparsable`, `unmaskable`).
    pub removed: Vec<&'static str>,
    /// One entry per field where only the last line of defence found a
    /// participant's address: the field (see `rules::leak_label`).
    pub leaks_fixed: Vec<&'static str>,
}

/// A masked copy and what was done to it.
#[derive(Debug)]
pub struct Masked {
    /// The masked message: the new header, then the body as it came.
    pub content: Vec<u8>,
    /// What masking did, for the metrics.
    pub report: Report,
}

/// The message with `prepend` (the relay's trace fields) added on top and
/// every field masked. Fields in which no reader finds a participant keep
/// their bytes, envelope fields of earlier deliveries excepted (removed).
/// Takes the message already split, as the caller has it for every order.
pub fn mask(parsed: &Parsed<'_>, masker: &Masker<'_>, prepend: &[u8]) -> Masked {
    let aliases = masker.aliases;
    let size = parsed.header_len() + parsed.rest.len();
    let mut out = Vec::with_capacity(size + prepend.len() + 256);
    let mut report = Report::default();
    out.extend_from_slice(prepend);
    report
        .removed
        .extend(parsed.dropped.iter().map(|_| "unparsable"));
    let drop_arc = masker.drop_arc
        || parsed
            .fields
            .iter()
            .any(|f| treatment(f.name) == Treatment::ArcSet && reads_known(f, aliases));
    for f in &parsed.fields {
        let (written, removed, leak) = match treatment(f.name) {
            Treatment::Addresses { .. } => (address_fields::mask(f, aliases), None, false),
            Treatment::Envelope => (None, Some("envelope"), false),
            Treatment::Verdict if claims(f, masker.authserv_id) || reads_known(f, aliases) => {
                (None, Some("verdict"), false)
            }
            Treatment::ArcSet if drop_arc => (None, Some("arc"), false),
            Treatment::Signed if reads_known(f, aliases) => (None, Some("signature"), false),
            Treatment::MessageIds => {
                let ids = message_ids::mask(f, aliases, masker.masked_id);
                match ids {
                    Some(ids) => defended(&Parsed::new(&ids).fields, aliases, Some(ids.clone())),
                    None => defended(std::slice::from_ref(f), aliases, None),
                }
            }
            Treatment::Parameters => outcome(params::mask(f, aliases), true),
            Treatment::Trace => outcome(defend(f, aliases), false),
            Treatment::Verdict | Treatment::ArcSet | Treatment::Signed | Treatment::Other => {
                outcome(defend(f, aliases), true)
            }
        };
        if let Some(reason) = removed {
            report.removed.push(reason);
            continue;
        }
        if leak {
            report.leaks_fixed.push(leak_label(f.name));
        }
        out.extend_from_slice(written.as_deref().unwrap_or(f.raw));
    }
    if parsed.needs_separator {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(parsed.rest);
    Masked {
        content: out,
        report,
    }
}

type Outcome = (Option<Vec<u8>>, Option<&'static str>, bool);

/// The defence's verdict as (what to write, why removed, a leak fixed).
fn outcome(d: Defended, counted: bool) -> Outcome {
    match d {
        Defended::Clean => (None, None, false),
        Defended::Fixed(bytes) => (Some(bytes), None, counted),
        Defended::Remove => (None, Some("unmaskable"), false),
    }
}

/// Message ids already masked (`ids`, a whole field) or not (`None`):
/// whatever else of the field holds a participant goes to the defence,
/// which counts it.
fn defended(fields: &[Field<'_>], aliases: &AliasMap, ids: Option<Vec<u8>>) -> Outcome {
    let Some(f) = fields.first() else {
        return (None, Some("unmaskable"), false);
    };
    match (defend(f, aliases), ids) {
        (Defended::Clean, ids) => (ids, None, false),
        (Defended::Fixed(bytes), _) => (Some(bytes), None, true),
        (Defended::Remove, _) => (None, Some("unmaskable"), false),
    }
}

/// Whether an Authentication-Results field names `authserv_id` as the host
/// that wrote it (its first token, comments and white space skipped).
fn claims(f: &Field<'_>, authserv_id: &str) -> bool {
    if authserv_id.is_empty() {
        return false;
    }
    let text = String::from_utf8_lossy(f.value);
    let mut rest = text.trim_start();
    while let Some(after) = rest.strip_prefix('(') {
        rest = after.split_once(')').map_or("", |(_, r)| r).trim_start();
    }
    let id = rest
        .split(|c: char| c == ';' || c == '(' || c.is_whitespace())
        .next()
        .unwrap_or_default();
    id.eq_ignore_ascii_case(authserv_id)
}

#[cfg(test)]
#[path = "header_tests.rs"]
mod tests;
