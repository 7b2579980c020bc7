-- Encryption at rest: a sealed address (`enc:v1:<key id>:<blind index>:…`)
-- carries an HMAC of the address; lookups by address use this index on
-- it (the same expression as `schema::EMAIL_INDEX`), never the clear text.
CREATE INDEX participants_by_email_index ON participants
    ((CASE WHEN substr(email, 1, 7) = 'enc:v1:' THEN substr(email, 8, 41) END));
