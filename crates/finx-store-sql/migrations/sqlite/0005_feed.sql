-- The transactions sync feed (issue 14): every change to a transaction takes the next number
-- of its access's sequence (`access_seqs`, whose row is locked by the writing transaction, so
-- numbers commit in order), kept in `seq`; `created_seq` is the number it was inserted with.
-- A removed transaction leaves its id and numbers in `removed_transactions`.
ALTER TABLE transactions ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE transactions ADD COLUMN created_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX transactions_feed ON transactions (account_id, seq);

CREATE TABLE removed_transactions (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    created_seq BIGINT NOT NULL
);
CREATE INDEX removed_transactions_feed ON removed_transactions (account_id, seq);

CREATE TABLE access_seqs (
    access_id TEXT PRIMARY KEY,
    seq       BIGINT NOT NULL
);
