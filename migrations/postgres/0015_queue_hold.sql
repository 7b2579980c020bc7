-- An operator's hold on a delivery (`ct-relay queue hold`): while
-- `held_at` (milliseconds) is set, the delivery is not attempted;
-- `queue release` (or `queue retry`) clears it.
ALTER TABLE deliveries ADD COLUMN held_at BIGINT;
