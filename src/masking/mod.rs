//! Masking a message: every participant's real address in the header
//! section replaced by its alias or removed with the field that holds it
//! (`header`), and the timeline's summary of it (`summary`). Pure functions
//! over bytes; the body is never rewritten.
//!
//! How the pieces fit: `section` splits the header into fields, `rules`
//! says what happens to each by name, `address_list` reads address fields,
//! `finder` and `text` find participants' addresses however they are
//! spelled, `defence` checks every field as its readers would read it.

mod address_fields;
pub mod address_list;
mod address_tokens;
mod alias_map;
mod defence;
mod encode;
mod finder;
pub mod header;
mod message_ids;
mod params;
pub mod rules;
pub mod section;
mod spelling;
pub mod summary;
mod text;

pub use address_fields::addresses;
pub use alias_map::{canonical, AliasMap};
pub use header::{mask, Masked, Masker, Report};
pub use rules::REPLY_FIELDS;
pub use section::{Field, Parsed};
pub use spelling::percent_at;
pub use summary::{summarize, Summary};
pub use text::replace_text;

/// Whether any reader would find a participant's address in a header
/// field: the check every masked field passes. For tests and fuzzing,
/// which assert it of every field they get back.
pub fn shows_participant(field: &Field<'_>, aliases: &AliasMap) -> bool {
    defence::reads_known(field, aliases)
}
