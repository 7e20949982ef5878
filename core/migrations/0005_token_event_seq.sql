-- A second numbering of events, per token, for the token's feed (GET /v1/events), as
-- jobs.event_seq numbers a job's. core/outbox.record_event takes the next token_seq by
-- updating the token's row after the job's row (the lock order of every transition), so
-- the row lock makes a token's events numbered in commit order, with no gap.

-- last per-token event sequence number handed out.
ALTER TABLE tokens ADD COLUMN event_seq bigint NOT NULL DEFAULT 0;

-- token_id is the job's, copied so the feed reads one index, never a join; a job's token
-- never changes.
ALTER TABLE events ADD COLUMN token_id uuid;
ALTER TABLE events ADD COLUMN token_seq bigint;

-- The history so far, in the order it was written: a job's events got increasing ids,
-- so each job's own order is kept within its token's.
UPDATE events e SET token_id = j.token_id FROM jobs j WHERE j.id = e.job_id;
UPDATE events e SET token_seq = numbered.token_seq
FROM (
    SELECT id, row_number() OVER (PARTITION BY token_id ORDER BY id) AS token_seq FROM events
) numbered
WHERE numbered.id = e.id;
UPDATE tokens t SET event_seq = latest.token_seq
FROM (SELECT token_id, max(token_seq) AS token_seq FROM events GROUP BY token_id) latest
WHERE latest.token_id = t.id;

ALTER TABLE events
    ALTER COLUMN token_id SET NOT NULL,
    ALTER COLUMN token_seq SET NOT NULL,
    ADD CONSTRAINT events_token_seq UNIQUE (token_id, token_seq);
