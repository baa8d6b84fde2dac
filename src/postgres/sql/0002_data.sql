-- Version 2: what agents keep (memories, conversations, steps, idempotency
-- keys, usage). As for jobs, each record is whole in a `json` column (the
-- ports' camelCase shape, written and read by the adapter); the columns
-- beside it are only what SQL must search, order or lock by.
--
-- Names that come from callers (agent, user and conversation ids,
-- idempotency keys, provider names) are `bytea`, their UTF-8 bytes: they
-- may hold any character, NUL included, which `text` cannot.

-- Memories: one row each; a scope is (agent_id, user_id), user_id NULL for
-- the agent-wide scope. UUIDv7 ids: id order is creation order.
CREATE TABLE memories (
    id       uuid    PRIMARY KEY,
    agent_id bytea   NOT NULL,
    user_id  bytea,
    archived boolean NOT NULL,
    data     json    NOT NULL
);
-- Listing a scope, oldest first.
CREATE INDEX memories_scope ON memories (agent_id, user_id, id);

-- The idempotency keys of `remember`: which memory each stored. No foreign
-- key: a key stays spent when its memory is forgotten.
CREATE TABLE memory_keys (
    key       bytea PRIMARY KEY,
    memory_id uuid  NOT NULL
);

-- Conversation messages; UUIDv7 ids, so id order is append order.
CREATE TABLE messages (
    conversation_id bytea NOT NULL,
    id              uuid  NOT NULL,
    data            json  NOT NULL,
    PRIMARY KEY (conversation_id, id)
);

-- The idempotency keys of `append`: which message each stored.
CREATE TABLE message_keys (
    key             bytea PRIMARY KEY,
    conversation_id bytea NOT NULL,
    message_id      uuid  NOT NULL
);

-- Agent steps, contiguous from 0 per job. No foreign key to `jobs`: steps
-- may belong to jobs of no row (the port takes any id); retention deletes
-- a pruned job's steps itself.
CREATE TABLE steps (
    job_id     uuid   NOT NULL,
    step_index bigint NOT NULL,
    record     json   NOT NULL,
    PRIMARY KEY (job_id, step_index)
);

-- The idempotency registry: each key claimed once, with its value.
-- `job_id` is the job the key names (`job_of_key`), if any: retention
-- deletes a pruned job's keys by it.
CREATE TABLE idempotency_keys (
    key    bytea PRIMARY KEY,
    job_id uuid,
    value  json  NOT NULL
);
CREATE INDEX idempotency_keys_job ON idempotency_keys (job_id) WHERE job_id IS NOT NULL;

-- Every recorded model call. `seq` is taken when the call is recorded, so
-- calls of the same time keep their recording order; `day` is the UTC day
-- of `at`, the day the call counts toward.
CREATE TABLE usage_calls (
    seq    bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at     timestamptz NOT NULL,
    day    date        NOT NULL,
    record json        NOT NULL
);
-- A day's calls in recording order.
CREATE INDEX usage_calls_day ON usage_calls (day, at, seq);
-- Retention: calls older than the cutoff.
CREATE INDEX usage_calls_at ON usage_calls (at);

-- Running totals per agent or provider and day, added to by each recorded
-- call (`calls = calls + 1` …, so concurrent recorders never lose one).
-- Kept when retention drops the calls.
CREATE TABLE usage_totals (
    day           date   NOT NULL,
    kind          text   NOT NULL CHECK (kind IN ('agent', 'provider')),
    name          bytea  NOT NULL,
    calls         bigint NOT NULL,
    input_tokens  bigint NOT NULL,
    output_tokens bigint NOT NULL,
    cost_nanos    bigint NOT NULL,
    PRIMARY KEY (day, kind, name)
);
