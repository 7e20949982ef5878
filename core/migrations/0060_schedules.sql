-- Schedules: a job body fired on a cron, token-scoped like jobs. Every tick a scheduler
-- dealt with is one row of schedule_ticks, created (with its job) or skipped (with why);
-- UNIQUE (schedule_id, tick) is what makes a tick's job exactly one, whatever the number
-- of schedulers, restarts or kills: the tick is claimed in the transaction that creates
-- the job, so a lost race, a rollback or a crash leaves neither behind.
CREATE TABLE schedules (
    id          uuid PRIMARY KEY,
    token_id    uuid NOT NULL REFERENCES tokens (id),
    name        text NOT NULL,
    cron        text NOT NULL,
    timezone    text NOT NULL,
    -- the POST /v1/jobs body, validated at creation and again at every tick
    job         jsonb NOT NULL,
    overlap     text NOT NULL CHECK (overlap IN ('allow', 'forbid', 'replace')),
    catchup     text NOT NULL CHECK (catchup IN ('none', 'latest', 'all')),
    paused      boolean NOT NULL DEFAULT false,
    -- the first cron tick no scheduler has dealt with yet: due once it is in the past
    next_tick   timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (token_id, name)
);
CREATE INDEX schedules_due ON schedules (next_tick);
CREATE INDEX schedules_token ON schedules (token_id, created_at DESC, id DESC);

CREATE TABLE schedule_ticks (
    schedule_id uuid NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    tick        timestamptz NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('created', 'skipped')),
    reason      text,
    -- a tick fired by POST .../trigger rather than the cron
    manual      boolean NOT NULL DEFAULT false,
    -- the tick row is written before its job (the claim comes first), so the check waits
    -- for the commit
    job_id      uuid REFERENCES jobs (id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (schedule_id, tick)
);

ALTER TABLE jobs ADD COLUMN schedule_id uuid REFERENCES schedules (id) ON DELETE SET NULL;
ALTER TABLE jobs ADD COLUMN scheduled_for timestamptz;
CREATE INDEX jobs_schedule ON jobs (schedule_id, created_at DESC) WHERE schedule_id IS NOT NULL;
