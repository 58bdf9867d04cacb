-- Webhooks (issue 14). Endpoints keep their signing secrets sealed under the data key. An
-- event is written in the transaction of the change it reports, with one delivery per
-- enabled endpoint of its client; a delivery is a row runners claim like sync jobs:
-- `attempt` rises with every claim, and only the latest claim may finish it. Attempts are
-- logged per endpoint and purged after the retention window.
CREATE TABLE webhook_endpoints (
    id              TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    url             TEXT NOT NULL,
    secret          TEXT NOT NULL,
    previous_secret TEXT,
    previous_until  BIGINT,
    created_at      BIGINT NOT NULL,
    disabled_at     BIGINT,
    last_success_at BIGINT
);
CREATE INDEX webhook_endpoints_client ON webhook_endpoints (client_id, created_at);

CREATE TABLE webhook_events (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX webhook_events_created ON webhook_events (created_at);

CREATE TABLE webhook_deliveries (
    event_id    TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    status      TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    next_at     BIGINT NOT NULL,
    lease_until BIGINT,
    PRIMARY KEY (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, status);

CREATE TABLE webhook_attempts (
    endpoint_id TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    status      BIGINT,
    error       TEXT,
    millis      BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, at);
CREATE INDEX webhook_attempts_at ON webhook_attempts (at);
