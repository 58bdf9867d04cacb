-- The bank registry: the banks reached through their XS2A APIs. `name_folded` is the name in
-- ASCII lower case, for a case-insensitive search that works alike on both databases.
CREATE TABLE banks (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL,
    name_folded TEXT NOT NULL,
    bic TEXT,
    bank_code TEXT,
    country TEXT NOT NULL,
    url TEXT NOT NULL,
    sca_approaches TEXT NOT NULL,
    consent_model TEXT NOT NULL,
    quirks TEXT NOT NULL
);
CREATE INDEX banks_name ON banks (name, id);
CREATE INDEX banks_bic ON banks (bic);
CREATE INDEX banks_code ON banks (country, bank_code);
