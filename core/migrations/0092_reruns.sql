-- Re-runs: a job made from another's body points at it, and a task a re-run took over
-- from the original (it succeeded there and is not run again) points at that task.
ALTER TABLE jobs ADD COLUMN rerun_of uuid REFERENCES jobs (id) ON DELETE SET NULL;
CREATE INDEX jobs_rerun_of ON jobs (rerun_of, created_at DESC) WHERE rerun_of IS NOT NULL;
ALTER TABLE tasks ADD COLUMN reused_from uuid REFERENCES tasks (id) ON DELETE SET NULL;
