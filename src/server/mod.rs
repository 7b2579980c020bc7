//! The SMTP server: the listener accepts, each connection owns its socket.

pub mod clients;
pub mod connection;
pub mod listener;
mod stream;
pub mod tls;

pub use clients::ClientLimits;
pub use connection::ConnectionContext;
pub use listener::Listener;
pub use tls::{TlsError, TlsFiles};
