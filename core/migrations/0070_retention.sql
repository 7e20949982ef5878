-- Retention: finished jobs older than their token's retention period are deleted by the
-- notifier's purger (notifier/retention.py, SQL in core/store/retention.py), in small
-- batches. A job is deleted with one DELETE on jobs: everything that belongs to it goes
-- by ON DELETE CASCADE (tasks, edges, attempts, results, events, webhook rows, and any
-- table added later that references jobs or tasks with a cascade), and rows of other
-- jobs or schedules that merely point at it are set to NULL (rerun_of, reused_from, a
-- schedule tick's job_id). tests/integration/core/test_retention_cascades.py checks that
-- every foreign key reaching jobs does one or the other, with an index to find its rows.

-- A job the client asked to keep is never deleted (POST /v1/jobs {"keep": true}, or
-- PATCH /v1/jobs/{id}).
ALTER TABLE jobs ADD COLUMN keep boolean NOT NULL DEFAULT false;

-- A token's own retention period, in seconds: NULL is the setting's
-- (HOMERUN_RETENTION_SECONDS), 0 keeps the token's jobs forever.
ALTER TABLE tokens ADD COLUMN retention_seconds integer CHECK (retention_seconds >= 0);

-- The purger's question, per token: its finished, unkept jobs, oldest first. Partial, so
-- unfinished and kept jobs cost it nothing.
CREATE INDEX jobs_expiry ON jobs (token_id, finished_at)
    WHERE finished_at IS NOT NULL AND NOT keep;

-- The SET NULL actions a deletion fires look up the rows pointing at the deleted job or
-- task; without these indexes each deleted row would scan the whole referencing table.
-- (jobs.rerun_of and jobs.schedule_id have theirs already.)
CREATE INDEX schedule_ticks_job ON schedule_ticks (job_id) WHERE job_id IS NOT NULL;
-- tasks.reused_from (0092) gets its index in 0093, after the column exists.
