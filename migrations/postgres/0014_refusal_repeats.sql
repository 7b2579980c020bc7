-- Repeated refusals collapse: the same sender refused for the same
-- recipients of one order within an hour bumps `repeats` (and `last_at`) of
-- the first entry instead of writing another entry and webhook event.
ALTER TABLE timeline_entries ADD COLUMN repeats BIGINT NOT NULL DEFAULT 1;
ALTER TABLE timeline_entries ADD COLUMN last_at BIGINT;
