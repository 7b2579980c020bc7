-- Retention per store: a store may keep its mail and timelines for less
-- than storage.retention (never more); NULL: the global retention. Its
-- purge finds the store's old messages by this index.
ALTER TABLE stores ADD COLUMN retention_ms INTEGER;
CREATE INDEX messages_by_store_received ON messages (store, received_at);
