-- Legal hold: an order kept past retention (a dispute, a court order).
-- Purge and erasure skip everything of a held order until the hold is
-- lifted.
CREATE TABLE holds (
    store    TEXT NOT NULL,
    order_id TEXT NOT NULL,
    held_at  BIGINT NOT NULL,
    reason   TEXT NOT NULL,
    PRIMARY KEY (store, order_id)
);
