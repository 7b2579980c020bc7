-- Hard-bounce suppression: a participant whose mailbox answered "no such
-- user" (5.1.1, 5.1.2) or "disabled" (5.2.1) often enough is undeliverable:
-- mail to its alias is refused at RCPT until its address is changed.
ALTER TABLE participants ADD COLUMN hard_bounces BIGINT NOT NULL DEFAULT 0;
ALTER TABLE participants ADD COLUMN undeliverable_at BIGINT;
-- Timeline entries that record an event about the order rather than a
-- message (participant.undeliverable).
ALTER TABLE timeline_entries ADD COLUMN event TEXT;

-- Webhook events gain the kind `participant.undeliverable`.
ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_kind_check;
ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_kind_check CHECK (kind IN
    ('message.accepted', 'message.refused', 'delivery.updated', 'participant.undeliverable'));
