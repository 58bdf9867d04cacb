-- Enrichment (issue 17): a grant keeps the language of its flow, in which finX names
-- categories for it.
ALTER TABLE grants ADD COLUMN language TEXT NOT NULL DEFAULT 'de';
