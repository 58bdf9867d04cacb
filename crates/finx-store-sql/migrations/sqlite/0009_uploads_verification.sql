-- Transaction uploads (issue 17): one record per upload. Its data lives under its grant;
-- the record goes at expires_at (one-time retention).
CREATE TABLE uploads (
    id            TEXT PRIMARY KEY,
    client_id     TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    started_at    INTEGER,
    ended_at      INTEGER,
    expires_at    INTEGER NOT NULL,
    grant_id      TEXT,
    error_code    INTEGER,
    error_message TEXT
);
CREATE INDEX uploads_expiry ON uploads (expires_at);
-- Account verification (issue 17): the name (and IBAN) the customer asked to verify, kept
-- with the grant of the verification's flow (JSON; NULL for other grants).
ALTER TABLE grants ADD COLUMN verification TEXT;
