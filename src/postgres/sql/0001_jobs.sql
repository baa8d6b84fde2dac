-- Version 1: the queue. Jobs are rows whose columns are what the database
-- must search, order or lock by; the whole job (as the ports define it) is
-- in `data`, written and read by the adapter after the job rules ran.

CREATE TABLE jobs (
    id          uuid PRIMARY KEY,          -- UUIDv7: id order is creation order
    worker      text        NOT NULL,
    status      text        NOT NULL,      -- queued | running | completed | failed | cancelled
    attempt     integer     NOT NULL,
    priority    integer     NOT NULL,
    run_at      timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    unique_key  text,
    lease_node  uuid,                      -- the node running it (status = running)
    lease_until timestamptz,               -- when its lease ends unless renewed
    data        json        NOT NULL
);

-- A unique key is held by at most one active job, enforced here.
CREATE UNIQUE INDEX jobs_unique_active ON jobs (unique_key)
    WHERE unique_key IS NOT NULL AND status IN ('queued', 'running');
-- The claim: ready jobs of a worker in claim order.
CREATE INDEX jobs_ready ON jobs (worker, priority DESC, run_at, id)
    WHERE status = 'queued';
-- The scheduler's next wake-up: the earliest queued run_at.
CREATE INDEX jobs_queued_run_at ON jobs (run_at) WHERE status = 'queued';
-- The rescuer: running jobs by lease end; a node's own leases.
CREATE INDEX jobs_leases ON jobs (lease_until) WHERE status = 'running';
CREATE INDEX jobs_lease_node ON jobs (lease_node) WHERE status = 'running';
-- Listing newest first by status or worker.
CREATE INDEX jobs_by_status ON jobs (status, id DESC);
CREATE INDEX jobs_by_worker ON jobs (worker, id DESC);
-- Retention: ended jobs by the time they ended.
CREATE INDEX jobs_ended ON jobs (updated_at)
    WHERE status IN ('completed', 'failed', 'cancelled');

CREATE TABLE schedules (
    id           text PRIMARY KEY,
    next_fire_at timestamptz NOT NULL,
    data         json        NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_fire_at);

-- One row per paused target: '*' for everything, else a worker name.
CREATE TABLE pauses (
    target text PRIMARY KEY
);

-- The nodes of the cluster, each with its last heartbeat.
CREATE TABLE nodes (
    id          uuid PRIMARY KEY,
    host        text        NOT NULL,
    pid         integer     NOT NULL,
    version     text        NOT NULL,
    started_at  timestamptz NOT NULL,
    heartbeat   timestamptz NOT NULL,
    running     integer     NOT NULL DEFAULT 0
);
