-- Growth: every list that grows with traffic is read by an index, a page
-- at a time, and every purge scan finds its rows without reading the table.

-- Timelines page by key: (at, id) after the cursor's entry.
DROP INDEX timeline_by_order;
CREATE INDEX timeline_by_order ON timeline_entries (store, order_id, at, id);
-- Deleting a message cascades to its entries: find them by message.
CREATE INDEX timeline_by_message ON timeline_entries (message_id);
-- Purge: refusals (entries without a message) past retention.
CREATE INDEX timeline_refused_by_time ON timeline_entries (at) WHERE message_id IS NULL;
-- Purge: messages past retention, aliases expired long ago.
CREATE INDEX messages_by_received ON messages (received_at);
CREATE INDEX participants_by_expiry ON participants (expires_at);
-- The queue list: deliveries not delivered, the next due first.
CREATE INDEX deliveries_undelivered ON deliveries (next_attempt_at)
    WHERE state IN ('queued', 'retrying', 'failed');
-- One index serves lookups by order id and by (store, order id): one
-- fewer to update for every alias made.
DROP INDEX participants_by_order;
DROP INDEX participants_by_order_id;
CREATE INDEX participants_by_order ON participants (order_id, store);

-- Nodes sharing the database say they are alive every `delivery.heartbeat`;
-- the leases of a node whose `alive_until` passed are free to claim.
CREATE TABLE nodes (
    node        TEXT PRIMARY KEY,
    started_at  INTEGER NOT NULL,
    alive_until INTEGER NOT NULL
);
