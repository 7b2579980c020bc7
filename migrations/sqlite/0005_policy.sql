-- Trust at the door: each store's policy, senders blocked for an order,
-- why mail was refused and what an accepted entry was marked with, and
-- counting recent mail per recipient alias for the rate limits.

ALTER TABLE stores ADD COLUMN policy TEXT;            -- JSON; NULL: the defaults

-- A blocked sender is a participant of the order with blocked_at set
-- (a contact is made for an address that was none).
ALTER TABLE participants ADD COLUMN blocked_at INTEGER;

ALTER TABLE timeline_entries ADD COLUMN reason TEXT;  -- why refused (machine-readable)
ALTER TABLE timeline_entries ADD COLUMN flags TEXT;   -- JSON [string]: spam, unscanned, unverified

ALTER TABLE deliveries ADD COLUMN sender_alias TEXT;  -- the alias the copy came from
CREATE INDEX deliveries_by_rcpt_time ON deliveries (rcpt_alias, created_at);
