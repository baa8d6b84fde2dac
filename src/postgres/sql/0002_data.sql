-- Version 2: what agents keep (memories, conversations, steps, idempotency
-- keys, usage). Filled in by the data-ports work.
CREATE TABLE steps (
    job_id     uuid    NOT NULL,
    step_index integer NOT NULL,
    record     json    NOT NULL,
    PRIMARY KEY (job_id, step_index)
);
CREATE TABLE idempotency_keys (
    key    text PRIMARY KEY,
    job_id uuid,
    value  json NOT NULL
);
CREATE INDEX idempotency_keys_job ON idempotency_keys (job_id) WHERE job_id IS NOT NULL;
CREATE TABLE usage_calls (
    seq bigserial PRIMARY KEY,
    at  timestamptz NOT NULL,
    day date NOT NULL,
    record json NOT NULL
);
CREATE INDEX usage_calls_at ON usage_calls (at);
