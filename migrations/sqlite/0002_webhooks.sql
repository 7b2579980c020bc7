-- Webhooks: an optional URL per store, and an outbox of events for it.
-- Events are written in the same transaction as the timeline change they
-- announce, so none is lost; a dispatcher leases and sends them.

ALTER TABLE stores ADD COLUMN webhook_url TEXT;
ALTER TABLE stores ADD COLUMN webhook_secret TEXT;

CREATE TABLE webhook_events (
    id              TEXT PRIMARY KEY,
    store           TEXT NOT NULL,
    order_id        TEXT NOT NULL,
    entry_id        TEXT NOT NULL,           -- the timeline entry announced
    kind            TEXT NOT NULL CHECK (kind IN ('message.accepted', 'message.refused', 'delivery.updated')),
    created_at      INTEGER NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_status     TEXT,                    -- "HTTP 500", "timed out", …
    updated_at      INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until     INTEGER
);
CREATE INDEX webhook_events_due ON webhook_events (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_events_by_created ON webhook_events (created_at);
