-- Audited unmasking: every time a participant's real address is shown
-- (`ct-relay alias show --reveal --reason R`), who asked, when, for which
-- alias and why. Kept: purge does not touch it.
CREATE TABLE reveals (
    id       TEXT PRIMARY KEY,
    at       INTEGER NOT NULL,
    actor    TEXT NOT NULL,          -- "cli:<user>"
    alias    TEXT NOT NULL,
    store    TEXT NOT NULL,
    order_id TEXT NOT NULL,
    reason   TEXT NOT NULL
);
CREATE INDEX reveals_by_time ON reveals (at);
