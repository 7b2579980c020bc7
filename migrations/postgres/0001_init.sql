-- ct-relay schema, PostgreSQL. Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE stores (
    store       TEXT PRIMARY KEY,
    mask_mode   TEXT NOT NULL CHECK (mask_mode IN ('hard', 'soft')),
    updated_at  BIGINT NOT NULL
);

-- One row per alias: a participant of one order in one mask mode.
CREATE TABLE participants (
    alias_key   TEXT PRIMARY KEY,            -- lowercase alias, the lookup key
    alias       TEXT NOT NULL,               -- as made (soft keeps local-part case)
    store       TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('customer', 'store', 'contact')),
    email       TEXT NOT NULL,               -- the real address
    mode        TEXT NOT NULL CHECK (mode IN ('hard', 'soft')),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    disabled_at BIGINT
);
CREATE INDEX participants_by_order ON participants (store, order_id);
CREATE INDEX participants_by_order_id ON participants (order_id);

-- The masked message, one per order of an SMTP transaction.
CREATE TABLE messages (
    id          TEXT PRIMARY KEY,
    queue_id    TEXT NOT NULL,
    store       TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    return_path TEXT NOT NULL,
    size        BIGINT NOT NULL,
    content     BYTEA NOT NULL
);

-- What the order's timeline shows; aliases only.
CREATE TABLE timeline_entries (
    id               TEXT PRIMARY KEY,
    store            TEXT NOT NULL,
    order_id         TEXT NOT NULL,
    at               BIGINT NOT NULL,
    message_id       TEXT REFERENCES messages (id) ON DELETE CASCADE,
    from_alias       TEXT,                   -- JSON AliasRef
    to_aliases       TEXT NOT NULL,          -- JSON [AliasRef]
    subject          TEXT NOT NULL,
    first_words      TEXT NOT NULL,
    attachment_names TEXT NOT NULL,          -- JSON [string]
    refused          TEXT                    -- reply given when refused at the door
);
CREATE INDEX timeline_by_order ON timeline_entries (store, order_id, at);

CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    message_id      TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    rcpt_alias      TEXT NOT NULL,
    rcpt_email      TEXT NOT NULL,           -- the real address
    mail_from       TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('queued', 'retrying', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_reply      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT
);
CREATE INDEX deliveries_by_message ON deliveries (message_id);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state IN ('queued', 'retrying');

-- Every attempt, for the record.
CREATE TABLE delivery_attempts (
    delivery_id TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    at          BIGINT NOT NULL,
    state       TEXT NOT NULL,
    reply       TEXT NOT NULL
);
CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts (delivery_id);
