-- Fan-out: a map task runs once per item of a list. The map task's row keeps its spec;
-- each instance is a task row of its own (claimed, leased, fenced and retried as any
-- task), pointing at its map task, with its index and item. A job's view leaves instance
-- rows out and shows counts (core/views.py); GET .../instances pages through them.
ALTER TABLE tasks ADD COLUMN map_spec jsonb;            -- {"over": name} or {"over_items": [...]}
ALTER TABLE tasks ADD COLUMN max_parallel integer;      -- instances queued or running at once
ALTER TABLE tasks ADD COLUMN map_parent uuid REFERENCES tasks (id) ON DELETE CASCADE;
ALTER TABLE tasks ADD COLUMN map_index integer;
ALTER TABLE tasks ADD COLUMN map_item jsonb;
CREATE UNIQUE INDEX tasks_map_instances ON tasks (map_parent, map_index)
    WHERE map_parent IS NOT NULL;
-- The job's own tasks, without the instances (the job view, webhooks, settling reads).
CREATE INDEX tasks_job_own ON tasks (job_id) WHERE map_parent IS NULL;
