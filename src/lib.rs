//! ct-relay: a mail transfer agent that masks e-mail addresses per order.
#![warn(missing_docs)]

pub mod accept;
pub mod alias;
pub mod bounce;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod http;
pub mod masking;
pub mod message_log;
pub mod mime;
pub mod policy;
pub mod private_files;
pub mod queue;
pub mod sender_auth;
pub mod server;
pub mod service;
pub mod smtp;
pub mod storage;
pub mod telemetry;
pub mod webhook;
