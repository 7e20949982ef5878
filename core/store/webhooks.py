"""Webhook deliveries (``webhook_deliveries``) and their attempts (``webhook_attempts``).

One delivery row per job with a callback URL, created once its terminal event is about to
be relayed; ``notifier.webhooks`` claims, sends and records them.
"""

from __future__ import annotations

from datetime import datetime

from databases import Database
from databases.core import Connection
from databases.interfaces import Record

from core.events import TERMINAL_JOB_EVENTS
from core.store import tasks

__all__ = [
    "claim_due",
    "job_state",
    "next_due_in",
    "record_attempt",
    "schedule",
    "set_outcome",
]

_TERMINAL_SQL = ", ".join(f"'{t}'" for t in sorted(TERMINAL_JOB_EVENTS))
_SCHEDULE = (
    "INSERT INTO webhook_deliveries (job_id, url, event_seq)"
    " SELECT e.job_id, j.callback_url, e.seq FROM events e JOIN jobs j ON j.id = e.job_id"
    f" WHERE e.relayed_at IS NULL AND e.type IN ({_TERMINAL_SQL})"
    " AND j.callback_url IS NOT NULL {job_filter}"
    " ON CONFLICT (job_id) DO NOTHING RETURNING job_id"
)


async def schedule(db: Database | Connection, job_id: str | None = None) -> int:
    """Create the delivery of every job (or of ``job_id``) whose terminal event is unrelayed.

    Returns how many deliveries were created (existing ones are left alone and not counted),
    so the caller wakes the senders only when there is something new to send.
    """
    # RETURNING lists exactly the inserted rows; ``execute`` would give only the first value.
    if job_id is None:
        rows = await db.fetch_all(_SCHEDULE.format(job_filter=""))
    else:
        rows = await db.fetch_all(
            _SCHEDULE.format(job_filter="AND e.job_id = :job_id"), {"job_id": job_id}
        )
    return len(rows)


async def next_due_in(db: Database) -> float | None:
    """Seconds until the next pending delivery that nobody is sending is due (0 if
    overdue); None if none.

    A delivery being sent stays pending and overdue until its attempt commits; counting it
    would make every idle worker poll it without pause for the whole HTTP call. Its sender
    looks again when done. SKIP LOCKED leaves it out; the row lock it takes on the row it
    returns lasts only this statement, and a claim that skipped the row meanwhile is
    harmless: this worker saw it due and claims it next.
    """
    value = await db.fetch_val(
        "SELECT EXTRACT(EPOCH FROM next_attempt_at - clock_timestamp())"
        " FROM webhook_deliveries WHERE status = 'pending'"
        " ORDER BY next_attempt_at LIMIT 1 FOR KEY SHARE SKIP LOCKED"
    )
    return None if value is None else max(0.0, float(str(value)))


async def claim_due(conn: Connection) -> Record | None:
    """Lock one due delivery for the rest of ``conn``'s transaction (skipping locked ones):
    its ``job_id``, ``url``, ``event_seq``, ``attempts`` so far and the ``webhook_secret``."""
    return await conn.fetch_one(
        "SELECT d.job_id, d.url, d.event_seq, d.attempts, t.webhook_secret"
        " FROM webhook_deliveries d JOIN jobs j ON j.id = d.job_id"
        " JOIN tokens t ON t.id = j.token_id"
        " WHERE d.status = 'pending' AND d.next_attempt_at <= clock_timestamp()"
        " ORDER BY d.next_attempt_at LIMIT 1 FOR UPDATE OF d SKIP LOCKED"
    )


async def job_state(conn: Connection, job_id: str, event_seq: int) -> tuple[Record, list[Record]]:
    """What a delivery reports: the job (with the ``type`` of its event ``event_seq``) and
    its tasks (``core.store.tasks.summaries``)."""
    job = await conn.fetch_one(
        "SELECT j.id, j.name, j.labels::text AS labels, j.status, j.created_at, j.finished_at,"
        " e.type FROM jobs j JOIN events e ON e.job_id = j.id AND e.seq = :seq WHERE j.id = :id",
        {"id": job_id, "seq": event_seq},
    )
    assert job is not None  # a delivery row references its job and event
    return job, await tasks.summaries(conn, job_id)


async def record_attempt(
    conn: Connection,
    job_id: str,
    number: int,
    *,
    url: str,
    started: datetime,
    status_code: int | None,
    error: str | None,
) -> None:
    await conn.execute(
        "INSERT INTO webhook_attempts (job_id, number, url, started_at, status_code, error)"
        " VALUES (:job_id, :number, :url, :started, :code, :error)",
        {
            "job_id": job_id,
            "number": number,
            "url": url,
            "started": started,
            "code": status_code,
            "error": error,
        },
    )


async def set_outcome(
    conn: Connection,
    job_id: str,
    *,
    attempts: int,
    status: str,
    error: str | None,
    next_attempt_at: datetime,
) -> None:
    """Record where the delivery stands after an attempt (``delivered_at`` once delivered)."""
    await conn.execute(
        "UPDATE webhook_deliveries SET attempts = :n, status = :status, last_error = :error,"
        " next_attempt_at = :next_at,"
        " delivered_at = CASE WHEN :status = 'delivered' THEN clock_timestamp() END"
        " WHERE job_id = :job_id",
        {
            "n": attempts,
            "status": status,
            "error": error,
            "next_at": next_attempt_at,
            "job_id": job_id,
        },
    )
