//! The SMTP server: the listener accepts, each connection owns its socket.

pub mod clients;
pub mod connection;
pub mod listener;

pub use clients::ClientLimits;
pub use connection::ConnectionContext;
pub use listener::Listener;
