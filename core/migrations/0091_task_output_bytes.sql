-- The size of a task's output as JSON text, kept when the output is written, so that a
-- job's view can leave large outputs out without reading them (wire.JOB_VIEW_OUTPUT_BYTES).
ALTER TABLE tasks ADD COLUMN output_bytes integer;
UPDATE tasks SET output_bytes = octet_length(output::text) WHERE output IS NOT NULL;
