-- The transactions sync feed (issue 14): every change to a transaction takes the next number
-- of its access's sequence (`access_seqs`, whose row is locked by the writing transaction, so
-- numbers commit in order), kept in `seq`; `created_seq` is the number it was inserted with.
-- Each removal leaves a row in `removed_transactions`. Existing transactions are numbered
-- 1, 2, … per access.
ALTER TABLE transactions ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE transactions ADD COLUMN created_seq BIGINT NOT NULL DEFAULT 0;

UPDATE transactions t SET seq = f.n, created_seq = f.n
    FROM (SELECT t2.id, ROW_NUMBER() OVER (PARTITION BY a.access_id ORDER BY t2.booked_on, t2.id) AS n
          FROM transactions t2 JOIN accounts a ON a.id = t2.account_id) f
    WHERE f.id = t.id;
CREATE INDEX transactions_feed ON transactions (account_id, seq);

CREATE TABLE removed_transactions (
    id          TEXT NOT NULL,
    account_id  TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    created_seq BIGINT NOT NULL,
    PRIMARY KEY (id, seq)
);
CREATE INDEX removed_transactions_feed ON removed_transactions (account_id, seq);

CREATE TABLE access_seqs (
    access_id TEXT PRIMARY KEY,
    seq       BIGINT NOT NULL
);
INSERT INTO access_seqs (access_id, seq)
    SELECT a.access_id, MAX(t.seq) FROM transactions t JOIN accounts a ON a.id = t.account_id
    GROUP BY a.access_id;
