//! The SMTP server: the listener accepts, each connection owns its socket.

pub mod connection;
pub mod listener;

pub use connection::ConnectionContext;
pub use listener::Listener;
