//! The delivery queue: leases due deliveries, attempts them, records outcomes.

mod backoff;
pub mod destinations;
pub mod handoff;
pub mod heartbeat;
mod redact;
mod runner;

pub use backoff::{Next, RetryPolicy};
pub use handoff::{FreshDelivery, Handoff, HandoffReceiver};
pub use redact::redact;
pub use runner::QueueRunner;
