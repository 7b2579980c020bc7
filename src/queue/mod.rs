//! The delivery queue: leases due deliveries, attempts them, records outcomes.

mod backoff;
mod runner;

pub use backoff::{Next, RetryPolicy};
pub use runner::{redact, QueueRunner};
