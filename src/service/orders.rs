//! Order events from the order system, and the rule that ties an order's
//! aliases to its life: invoiced or canceled, they end after
//! `alias.end_grace` (never later than they would anyway); reopened, they
//! work again for `alias.reopen_window`.

use chrono::{DateTime, Utc};

use super::{Result, Scope, Services};
use crate::storage::OrderExpiry;

/// What happened to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderEvent {
    /// The order was invoiced: its conversation winds down.
    Invoiced,
    /// The order was canceled: its conversation winds down.
    Canceled,
    /// The order came back (a return, a dispute): its aliases work again.
    Reopened,
}

impl OrderEvent {
    /// Every event.
    pub const ALL: [Self; 3] = [Self::Invoiced, Self::Canceled, Self::Reopened];

    /// The event's name, as the API and the logs give it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invoiced => "invoiced",
            Self::Canceled => "canceled",
            Self::Reopened => "reopened",
        }
    }

    /// The new end of the order's aliases, for an event at `now`.
    pub fn expiry(
        self,
        now: DateTime<Utc>,
        end_grace: std::time::Duration,
        reopen_window: std::time::Duration,
    ) -> OrderExpiry {
        match self {
            Self::Invoiced | Self::Canceled => OrderExpiry::NoLaterThan(now + end_grace),
            Self::Reopened => OrderExpiry::Until(now + reopen_window),
        }
    }
}

/// What an order event changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderEventOutcome {
    /// How many of the order's aliases it changed.
    pub aliases_changed: u64,
    /// When the order's aliases end now.
    pub aliases_end_at: DateTime<Utc>,
}

impl Services {
    /// Apply `event` to every alias of the store's order.
    pub async fn order_event(
        &self,
        scope: &Scope,
        store: &str,
        order: &str,
        event: OrderEvent,
        now: DateTime<Utc>,
    ) -> Result<OrderEventOutcome> {
        self.known_order(scope, store, order).await?;
        let expiry = event.expiry(now, self.end_grace, self.reopen_window);
        let changed = self.storage.set_order_expiry(store, order, expiry).await?;
        let (OrderExpiry::NoLaterThan(at) | OrderExpiry::Until(at)) = expiry;
        tracing::info!(store = %store, order = %order, event = event.as_str(), aliases = changed, "order event");
        Ok(OrderEventOutcome {
            aliases_changed: changed,
            aliases_end_at: at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn events_end_or_extend_the_aliases() {
        let now = Utc::now();
        let (grace, window) = (Duration::from_secs(60), Duration::from_secs(3600));
        assert_eq!(
            OrderEvent::Invoiced.expiry(now, grace, window),
            OrderExpiry::NoLaterThan(now + grace)
        );
        assert_eq!(
            OrderEvent::Canceled.expiry(now, grace, window),
            OrderExpiry::NoLaterThan(now + grace)
        );
        assert_eq!(
            OrderEvent::Reopened.expiry(now, grace, window),
            OrderExpiry::Until(now + window)
        );
    }
}
