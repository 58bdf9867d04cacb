-- finX schema, SQLite flavour. Instants are INTEGER microseconds since the Unix epoch (UTC);
-- dates are TEXT 'YYYY-MM-DD'; money is INTEGER in 1/10 000 of the currency unit plus the
-- scale it came with, so amounts are exact; secrets appear only as 32-byte keyed hashes.

CREATE TABLE clients (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    secret_hash   BLOB NOT NULL,
    redirect_uris TEXT NOT NULL,   -- JSON array of strings
    scope         TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE flows (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    version     INTEGER NOT NULL,
    status      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    document    TEXT NOT NULL      -- JSON: parameters, status details, attempt counters
);
CREATE INDEX flows_expires_at ON flows (expires_at);

CREATE TABLE grants (
    id           TEXT PRIMARY KEY,
    client_id    TEXT NOT NULL,
    flow_id      TEXT NOT NULL,
    access_id    TEXT NOT NULL,
    account_ids  TEXT NOT NULL,    -- JSON array of account ids
    scope        TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);

CREATE TABLE codes (
    hash       BLOB PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX codes_grant ON codes (grant_id);
CREATE INDEX codes_expires_at ON codes (expires_at);

CREATE TABLE access_tokens (
    hash       BLOB PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    scope      TEXT NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX access_tokens_grant ON access_tokens (grant_id);
CREATE INDEX access_tokens_expires_at ON access_tokens (expires_at);

CREATE TABLE refresh_tokens (
    hash       BLOB PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

CREATE TABLE accounts (
    id                 TEXT PRIMARY KEY,
    access_id          TEXT NOT NULL,
    external_id        TEXT NOT NULL,
    iban               TEXT,
    account_number     TEXT,
    bank_code          TEXT,
    bic                TEXT,
    bank_name          TEXT NOT NULL,
    currency           TEXT NOT NULL,
    account_type       TEXT NOT NULL,
    name               TEXT NOT NULL,
    owner              TEXT NOT NULL,
    is_jointly_managed INTEGER NOT NULL,
    card_last4         TEXT,
    balance_minor      INTEGER,
    balance_scale      INTEGER,
    balance_currency   TEXT,
    balance_date       TEXT,
    balance_status     TEXT,
    synced_at          INTEGER NOT NULL,
    succeeded_at       INTEGER,
    status_message     TEXT
);
CREATE INDEX accounts_access ON accounts (access_id);

CREATE TABLE transactions (
    id                   TEXT PRIMARY KEY,
    account_id           TEXT NOT NULL,
    external_id          TEXT NOT NULL,
    amount_minor         INTEGER NOT NULL,
    amount_scale         INTEGER NOT NULL,
    currency             TEXT NOT NULL,
    cp_name              TEXT,
    cp_name_lc           TEXT,
    cp_iban              TEXT,
    cp_bic               TEXT,
    cp_account_number    TEXT,
    cp_bank_code         TEXT,
    purpose              TEXT,
    purpose_lc           TEXT,
    booked_on            TEXT NOT NULL,
    value_date           TEXT NOT NULL,
    booked               INTEGER NOT NULL,
    booking_text         TEXT,
    transaction_type     TEXT NOT NULL,
    creditor_id          TEXT,
    mandate_reference    TEXT,
    end_to_end_reference TEXT,
    sepa_purpose_code    TEXT,
    created_at           INTEGER NOT NULL,
    modified_at          INTEGER NOT NULL
);
-- The finX queries read one grant's accounts in booking order, newest first, in pages.
CREATE INDEX transactions_account_booked ON transactions (account_id, booked_on, id);
CREATE INDEX transactions_account_pending ON transactions (account_id) WHERE booked = 0;
