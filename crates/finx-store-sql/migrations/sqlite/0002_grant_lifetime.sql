-- A grant's absolute end (microseconds), whatever its refreshes; existing grants get 180 days
-- from their creation. Revocation and the purge find a bank access's grants by access_id.
ALTER TABLE grants ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
UPDATE grants SET expires_at = created_at + 15552000000000;
CREATE INDEX grants_access ON grants (access_id);
CREATE INDEX grants_expires_at ON grants (expires_at);
CREATE INDEX accounts_synced_at ON accounts (synced_at);
-- The server looks for stale data fetches among the flows in `syncing`.
CREATE INDEX flows_status ON flows (status);
