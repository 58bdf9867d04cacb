-- Ongoing accesses (issue 13) and their sync jobs. An access's details (bank, consent, the
-- sealed bank session, chosen accounts, the sync ledger) are a JSON document; the columns are
-- what queries select on. Jobs are rows a runner claims: `attempt` rises with every claim,
-- and only the latest claim may finish a job.
CREATE TABLE accesses (
    id          TEXT COLLATE "C" PRIMARY KEY,
    client_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    version     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    document    TEXT NOT NULL
);
CREATE INDEX accesses_user ON accesses (client_id, user_id, created_at);

CREATE TABLE sync_jobs (
    id          TEXT PRIMARY KEY,
    access_id   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    run_at      BIGINT NOT NULL,
    attempt     BIGINT NOT NULL,
    lease_until BIGINT,
    created_at  BIGINT NOT NULL,
    started_at  BIGINT,
    finished_at BIGINT,
    added       BIGINT,
    modified    BIGINT,
    removed     BIGINT,
    error       TEXT
);
CREATE INDEX sync_jobs_due ON sync_jobs (status, run_at);
CREATE INDEX sync_jobs_access ON sync_jobs (access_id);
