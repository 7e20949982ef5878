-- Per-task resources and runner groups (core/runnergroups.py).
-- runs_on: labels a runner must all have to take the task (sorted, unique); empty: any runner.
-- cpus, memory_mb: the container's size asked for at submission; NULL: the task type's own.
ALTER TABLE tasks
    ADD COLUMN runs_on   text[] NOT NULL DEFAULT '{}',
    ADD COLUMN cpus      double precision,
    ADD COLUMN memory_mb integer;
