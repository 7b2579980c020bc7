-- Erasure of a data subject: a message sent to or by an erased person
-- loses its text (`done`), or is marked to lose it when its last delivery
-- to someone else ends (`pending`; the purge finishes it).
ALTER TABLE messages ADD COLUMN erasure TEXT CHECK (erasure IN ('pending', 'done'));
CREATE INDEX messages_erasure_pending ON messages (id) WHERE erasure = 'pending';
