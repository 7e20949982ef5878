-- Artifacts: the files an attempt left under /homerun/artifacts (runners/artifacts.py),
-- stored in Postgres so that every API replica on any node serves them, in chunks of
-- chunk_bytes so that a Range request reads only the chunks it covers. A row with
-- ``refused`` set is an entry that was reported and never collected (a symlink, a FIFO, a
-- device, a hard link out of the tree): it has no chunks.
CREATE TABLE artifacts (
    id           uuid PRIMARY KEY,
    task_id      uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    attempt      integer NOT NULL,
    path         text NOT NULL,
    size         bigint NOT NULL DEFAULT 0,
    sha256       text,
    content_type text NOT NULL DEFAULT 'application/octet-stream',
    chunk_bytes  integer NOT NULL,
    refused      text,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (task_id, path)
);

CREATE TABLE artifact_chunks (
    artifact_id uuid NOT NULL REFERENCES artifacts (id) ON DELETE CASCADE,
    seq         integer NOT NULL,
    data        bytea NOT NULL,
    PRIMARY KEY (artifact_id, seq)
);
-- The chunks are already compressed or not worth it: no TOAST compression pass.
ALTER TABLE artifact_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- Small input files a task carries in its submission ("files": {name: base64}), placed
-- read-only under /homerun/files (decoded by the runner).
ALTER TABLE tasks ADD COLUMN files jsonb;
