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

from core.events import EventType

# Postgres NOTIFY channel that wakes the notifier as soon as an event commits.
EVENTS_CHANNEL = "homerun_events"


async def record_event(
    conn: Connection,
    job_id: str,
    type: EventType,
    data: Mapping[str, Any] | None = None,
    *,
    task_id: str | None = None,
    attempt: int | None = None,
) -> int:
    """Append one event to ``job_id``'s history; return its sequence number in the job.

    Must run inside the caller's transaction on the primary.
    """
    # One statement, one round trip: four used to be a third of an attempt's trips to
    # Postgres. ``token`` reads ``job``, so the job's row is locked before the token's.
    row = await conn.fetch_one(
        "WITH job AS ("
        " UPDATE jobs SET event_seq = event_seq + 1 WHERE id = :job_id"
        " RETURNING id, event_seq, token_id"
        "), token AS ("
        " UPDATE tokens SET event_seq = event_seq + 1 WHERE id = (SELECT token_id FROM job)"
        " RETURNING event_seq"
        "), event AS ("
        " INSERT INTO events (job_id, seq, token_id, token_seq, type, task_id, attempt, data)"
        " SELECT job.id, job.event_seq, job.token_id, token.event_seq, :type,"
        " CAST(:task_id AS uuid), CAST(:attempt AS integer), CAST(:data AS jsonb)"
        " FROM job, token RETURNING job_id, seq"
        ") SELECT seq, pg_notify(:channel, CAST(job_id AS text)) FROM event",
        {
            "job_id": job_id,
            "type": type.value,
            "task_id": task_id,
            "attempt": attempt,
            "data": json.dumps(dict(data or {})),
            "channel": EVENTS_CHANNEL,
        },
    )
    if row is None:
        raise LookupError(f"no job {job_id}")  # callers lock the job first: a bug if seen
    return int(row["seq"])
