//! ct-relay: a mail transfer agent that masks e-mail addresses per order.

pub mod alias;
pub mod config;
pub mod masking;
pub mod smtp;
pub mod storage;
