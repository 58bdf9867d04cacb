-- Client administration (issue 16): the id of the hash key the secret was hashed under
-- ('' from before key ids), the secret before the last rotation with its end, and whether
-- the client is disabled.
ALTER TABLE clients ADD COLUMN secret_key_id TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN previous_secret_hash BYTEA;
ALTER TABLE clients ADD COLUMN previous_secret_key_id TEXT;
ALTER TABLE clients ADD COLUMN previous_secret_until BIGINT;
ALTER TABLE clients ADD COLUMN disabled_at BIGINT;
CREATE INDEX grants_client ON grants (client_id);
