-- Deleting a job (retention) sets tasks.reused_from to NULL on the tasks of its re-runs:
-- without an index each deleted task made that foreign-key action scan all of tasks
-- (a purge about 3x slower). Its own file because 0092 adds the column and a new database
-- applies 0070 (retention) before it.
CREATE INDEX IF NOT EXISTS tasks_reused_from ON tasks (reused_from) WHERE reused_from IS NOT NULL;
