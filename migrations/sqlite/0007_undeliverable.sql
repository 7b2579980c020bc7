-- Hard-bounce suppression: a participant whose mailbox answered "no such
-- user" (5.1.1, 5.1.2) or "disabled" (5.2.1) often enough is undeliverable:
-- mail to its alias is refused at RCPT until its address is changed.
ALTER TABLE participants ADD COLUMN hard_bounces INTEGER NOT NULL DEFAULT 0;
ALTER TABLE participants ADD COLUMN undeliverable_at INTEGER;
-- Timeline entries that record an event about the order rather than a
-- message (participant.undeliverable).
ALTER TABLE timeline_entries ADD COLUMN event TEXT;

-- Webhook events gain the kind `participant.undeliverable`: SQLite cannot
-- change a CHECK constraint, so the table is rebuilt with the new one.
CREATE TABLE webhook_events_new (
    id              TEXT PRIMARY KEY,
    store           TEXT NOT NULL,
    order_id        TEXT NOT NULL,
    entry_id        TEXT NOT NULL,           -- the timeline entry announced
    kind            TEXT NOT NULL CHECK (kind IN ('message.accepted', 'message.refused',
                        'delivery.updated', 'participant.undeliverable')),
    created_at      INTEGER NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_status     TEXT,                    -- "HTTP 500", "timed out", …
    updated_at      INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until     INTEGER
);
INSERT INTO webhook_events_new SELECT id, store, order_id, entry_id, kind, created_at, state,
    attempts, next_attempt_at, last_status, updated_at, lease_owner, lease_until FROM webhook_events;
DROP TABLE webhook_events;
ALTER TABLE webhook_events_new RENAME TO webhook_events;
CREATE INDEX webhook_events_due ON webhook_events (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_events_by_created ON webhook_events (created_at);
