//! The SMTP protocol, with no I/O: command lines in, replies and events out.

pub mod data;
pub mod input;
pub mod reply;
pub mod session;

pub use data::{DataError, DataReader};
pub use input::{InputBuffer, Line};
pub use reply::Reply;
pub use session::{Envelope, Event, Limits, Refusal, Session, Verdict};
