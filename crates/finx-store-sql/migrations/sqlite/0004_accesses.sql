-- Ongoing accesses (issue 13) and their sync jobs. An access's details (bank, consent, the
-- sealed bank session, chosen accounts, the sync ledger) are a JSON document; the columns are
-- what queries select on. Jobs are rows a runner claims: `attempt` rises with every claim,
-- and only the latest claim may finish a job.
CREATE TABLE accesses (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    version     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    document    TEXT NOT NULL
);
CREATE INDEX accesses_user ON accesses (client_id, user_id, created_at);

CREATE TABLE sync_jobs (
    id          TEXT PRIMARY KEY,
    access_id   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    run_at      INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    lease_until INTEGER,
    created_at  INTEGER NOT NULL,
    started_at  INTEGER,
    finished_at INTEGER,
    added       INTEGER,
    modified    INTEGER,
    removed     INTEGER,
    error       TEXT
);
CREATE INDEX sync_jobs_due ON sync_jobs (status, run_at);
CREATE INDEX sync_jobs_access ON sync_jobs (access_id);
