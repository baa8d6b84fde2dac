-- Version 3: jobs parked awaiting approval of tool calls (status
-- 'waiting'). A waiting job still holds its unique key, and its run_at is
-- its earliest pending approval deadline (9999-12-31 without one), which
-- the deadline pass finds through its own index. The approvals themselves
-- are in the job's `data`.

DROP INDEX jobs_unique_active;
CREATE UNIQUE INDEX jobs_unique_active ON jobs (unique_key)
    WHERE unique_key IS NOT NULL AND status IN ('queued', 'running', 'waiting');
CREATE INDEX jobs_waiting_deadline ON jobs (run_at) WHERE status = 'waiting';
