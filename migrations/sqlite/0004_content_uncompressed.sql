-- Nothing to change: SQLite never compresses. Keeps the migration numbers
-- of both stores in step (PostgreSQL stops compressing message content).
SELECT 1;
