//! Masking a message: rewriting the address fields of DESIGN.md section 3 and
//! summarising it for the timeline. Pure functions over bytes.

mod encode;
pub mod headers;
pub mod summary;
mod text;

pub use headers::{mask, AliasMap, Parsed, MASKED_FIELDS, SENDER_FIELDS};
pub use summary::{summarize, Summary};
