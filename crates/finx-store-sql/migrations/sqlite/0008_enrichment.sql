-- Enrichment (issue 17): a grant keeps the language of its flow, in which finX names
-- categories for it.
ALTER TABLE grants ADD COLUMN language TEXT NOT NULL DEFAULT 'de';
-- A transaction keeps the bank transaction code and the card's merchant category code,
-- which categorisation reads.
ALTER TABLE transactions ADD COLUMN bank_transaction_code TEXT;
ALTER TABLE transactions ADD COLUMN mcc TEXT;
