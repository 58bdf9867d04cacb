-- The transactions sync feed (issue 14): every change to a transaction takes the next number
-- of its access's sequence (`access_seqs`, whose row is locked by the writing transaction, so
-- numbers commit in order), kept in `seq`; `created_seq` is the number it was inserted with.
-- Each removal leaves a row in `removed_transactions`. Existing transactions are numbered
-- 1, 2, … per access.
ALTER TABLE transactions ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE transactions ADD COLUMN created_seq INTEGER NOT NULL DEFAULT 0;

CREATE TABLE feed_numbering (id TEXT PRIMARY KEY, n INTEGER NOT NULL);
INSERT INTO feed_numbering (id, n)
    SELECT t.id, ROW_NUMBER() OVER (PARTITION BY a.access_id ORDER BY t.booked_on, t.id)
    FROM transactions t JOIN accounts a ON a.id = t.account_id;
UPDATE transactions SET
    seq = (SELECT n FROM feed_numbering f WHERE f.id = transactions.id),
    created_seq = (SELECT n FROM feed_numbering f WHERE f.id = transactions.id)
    WHERE id IN (SELECT id FROM feed_numbering);
DROP TABLE feed_numbering;
CREATE INDEX transactions_feed ON transactions (account_id, seq);

CREATE TABLE removed_transactions (
    id          TEXT NOT NULL,
    account_id  TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    created_seq INTEGER NOT NULL,
    PRIMARY KEY (id, seq)
);
CREATE INDEX removed_transactions_feed ON removed_transactions (account_id, seq);

CREATE TABLE access_seqs (
    access_id TEXT PRIMARY KEY,
    seq       INTEGER NOT NULL
);
INSERT INTO access_seqs (access_id, seq)
    SELECT a.access_id, MAX(t.seq) FROM transactions t JOIN accounts a ON a.id = t.account_id
    GROUP BY a.access_id;
