-- Webhook deliveries. A job with a callback_url gets one delivery row when its terminal
-- event is first seen by a notifier; notifiers claim due rows with FOR UPDATE SKIP LOCKED,
-- so each delivery is attempted by one notifier at a time and succeeds at most once.
CREATE TABLE webhook_deliveries (
    job_id          uuid PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    url             text NOT NULL,
    -- the terminal event this delivery reports (job.succeeded / job.failed / job.cancelled)
    event_seq       bigint NOT NULL,
    -- pending: due at next_attempt_at; delivered: a 2xx came back; failed: gave up after
    -- webhook_max_attempts; refused: the destination is not allowed (private range, bad URL).
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed', 'refused')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    delivered_at    timestamptz
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';

-- Every attempt to deliver a webhook, successful or not: the audit trail an operator reads
-- when a receiver says it never got the call.
CREATE TABLE webhook_attempts (
    job_id      uuid NOT NULL REFERENCES webhook_deliveries (job_id) ON DELETE CASCADE,
    number      integer NOT NULL,
    url         text NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    status_code integer,
    error       text,
    PRIMARY KEY (job_id, number)
);
