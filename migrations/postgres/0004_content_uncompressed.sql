-- Message content is stored out of line as received, not compressed: pglz
-- took a large share of the server's CPU at load, and mail is largely
-- base64 attachments that hardly compress (the SQLite store does not
-- compress either). Applies to rows written from now on.
ALTER TABLE messages ALTER COLUMN content SET STORAGE EXTERNAL;
