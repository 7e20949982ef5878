-- homerun's data model. Postgres is the source of truth; both Redis are derived from it.

CREATE TABLE tokens (
    id            uuid PRIMARY KEY,
    name          text NOT NULL,
    -- sha256 of the bearer token; the token itself is shown once, at creation.
    hash          bytea NOT NULL UNIQUE,
    is_admin      boolean NOT NULL DEFAULT false,
    -- signs this token's webhook deliveries (HMAC-SHA256).
    webhook_secret text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);

CREATE TABLE jobs (
    id              uuid PRIMARY KEY,
    token_id        uuid NOT NULL REFERENCES tokens (id),
    name            text,
    labels          jsonb NOT NULL DEFAULT '{}'::jsonb,
    callback_url    text,
    status          text NOT NULL,
    idempotency_key text,
    request_hash    text,
    -- last per-job event sequence number handed out; the row lock on the job
    -- serialises a job's events, so their order is the order of the commits.
    event_seq       bigint NOT NULL DEFAULT 0,
    cancel_requested boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at     timestamptz,
    UNIQUE (token_id, idempotency_key)
);
CREATE INDEX jobs_token_newest ON jobs (token_id, created_at DESC, id DESC);
CREATE INDEX jobs_labels ON jobs USING gin (labels jsonb_path_ops);

CREATE TABLE tasks (
    id           uuid PRIMARY KEY,
    job_id       uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name         text NOT NULL,
    type         text NOT NULL,
    payload      jsonb NOT NULL,
    status       text NOT NULL,
    priority     integer NOT NULL DEFAULT 0,
    timeout_s    integer,
    max_attempts integer NOT NULL,
    -- number of the latest attempt: the fencing token every attempt write is checked against.
    attempts     integer NOT NULL DEFAULT 0,
    -- a retry waits until then before it is handed to the queue again.
    not_before   timestamptz,
    output       jsonb,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at   timestamptz,
    finished_at  timestamptz,
    UNIQUE (job_id, name)
);
CREATE INDEX tasks_job ON tasks (job_id);
CREATE INDEX tasks_unfinished ON tasks (status) WHERE status IN ('queued', 'running');

CREATE TABLE task_dependencies (
    task_id    uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    depends_on uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    PRIMARY KEY (task_id, depends_on)
);
CREATE INDEX task_dependencies_upstream ON task_dependencies (depends_on);

CREATE TABLE attempts (
    task_id          uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    number           integer NOT NULL,
    runner_id        text NOT NULL,
    status           text NOT NULL,
    lease_expires_at timestamptz NOT NULL,
    container_id     text,
    started_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at      timestamptz,
    exit_code        integer,
    failure_kind     text,
    error            text,
    PRIMARY KEY (task_id, number)
);
CREATE INDEX attempts_running ON attempts (lease_expires_at) WHERE status = 'running';

-- One result per attempt: the primary key makes a second write for the same attempt fail.
CREATE TABLE results (
    task_id          uuid NOT NULL,
    attempt          integer NOT NULL,
    exit_code        integer,
    stdout           text NOT NULL DEFAULT '',
    stdout_truncated boolean NOT NULL DEFAULT false,
    stderr           text NOT NULL DEFAULT '',
    stderr_truncated boolean NOT NULL DEFAULT false,
    output           jsonb,
    error            text,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (task_id, attempt),
    FOREIGN KEY (task_id, attempt) REFERENCES attempts (task_id, number) ON DELETE CASCADE
);

-- Every status change, written in the same transaction as the change itself: the job's
-- history, and the transactional outbox the notifier relays to the streams Redis.
CREATE TABLE events (
    id         bigserial PRIMARY KEY,
    job_id     uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq        bigint NOT NULL,
    type       text NOT NULL,
    task_id    uuid,
    attempt    integer,
    data       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    relayed_at timestamptz,
    UNIQUE (job_id, seq)
);
CREATE INDEX events_unrelayed ON events (id) WHERE relayed_at IS NULL;
