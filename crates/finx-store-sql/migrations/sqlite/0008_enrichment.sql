-- Enrichment (issue 17): a grant keeps the language of its flow, in which finX names
-- categories for it.
ALTER TABLE grants ADD COLUMN language TEXT NOT NULL DEFAULT 'de';
-- A transaction keeps the bank transaction code and the card's merchant category code,
-- which categorisation reads.
ALTER TABLE transactions ADD COLUMN bank_transaction_code TEXT;
ALTER TABLE transactions ADD COLUMN mcc TEXT;
-- A customer's own categorisation rules, in the order they apply. Amounts are exact
-- decimals as text.
CREATE TABLE category_rules (
    client_id        TEXT NOT NULL,
    id               TEXT NOT NULL,
    position         INTEGER NOT NULL,
    category         TEXT NOT NULL,
    name_contains    TEXT,
    purpose_contains TEXT,
    creditor_id      TEXT,
    iban             TEXT,
    min_amount       TEXT,
    max_amount       TEXT,
    PRIMARY KEY (client_id, id)
);
CREATE INDEX category_rules_order ON category_rules (client_id, position);
