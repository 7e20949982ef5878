"""Record a job's events in the same transaction as the change they describe.

The ``events`` table is both the job's permanent history and the transactional outbox
that the notifier relays to the streams Redis. Each event is numbered twice: ``seq`` within
its job, ``token_seq`` within its job's token (the feed of ``GET /v1/events``). Taking a
number locks the job's row, then the token's (the job row first, as in every transition),
and the lock is held until commit: so both numberings follow commit order, with no gap.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from databases.core import Connection

# Postgres NOTIFY channel that wakes the notifier as soon as an event commits.
EVENTS_CHANNEL = "homerun_events"


async def record_event(
    conn: Connection,
    job_id: str,
    type: str,
    data: Mapping[str, Any] | None = None,
    *,
    task_id: str | None = None,
    attempt: int | None = None,
) -> int:
    """Append one event to ``job_id``'s history; return its sequence number in the job.

    Must run inside the caller's transaction on the primary.
    """
    job = await conn.fetch_one(
        "UPDATE jobs SET event_seq = event_seq + 1 WHERE id = :job_id"
        " RETURNING event_seq, token_id",
        {"job_id": job_id},
    )
    if job is None:
        raise LookupError(f"no job {job_id}")  # callers lock the job first: a bug if seen
    token_seq: int = await conn.fetch_val(
        "UPDATE tokens SET event_seq = event_seq + 1 WHERE id = :token_id RETURNING event_seq",
        {"token_id": job["token_id"]},
    )
    seq = int(job["event_seq"])
    await conn.execute(
        "INSERT INTO events (job_id, seq, token_id, token_seq, type, task_id, attempt, data)"
        " VALUES (:job_id, :seq, :token_id, :token_seq, :type, :task_id, :attempt,"
        " CAST(:data AS jsonb))",
        {
            "job_id": job_id,
            "seq": seq,
            "token_id": job["token_id"],
            "token_seq": token_seq,
            "type": type,
            "task_id": task_id,
            "attempt": attempt,
            "data": json.dumps(dict(data or {})),
        },
    )
    await conn.execute(
        "SELECT pg_notify(:channel, :job_id)", {"channel": EVENTS_CHANNEL, "job_id": str(job_id)}
    )
    return seq
