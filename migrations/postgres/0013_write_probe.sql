-- /readyz writes here to learn whether storage takes writes (a full disk,
-- a read-only database or a stuck writer make the relay answer 451 4.3.0 to
-- all mail): one row per relay host name, updated in place.
CREATE TABLE write_probes (
    node TEXT PRIMARY KEY,
    at   BIGINT NOT NULL
);
