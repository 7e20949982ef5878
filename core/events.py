"""The wire format of a job's status events, shared by the notifier and the SSE endpoint.

An event reaches a client by one of two roads: relayed through the streams Redis, or read
back from Postgres (replay, or a gap in the stream). Both render it with ``render`` from the
same ``events`` row, so a client cannot tell which road an event took.

On the job stream an event's entry ID is ``<seq>-0``, on the token stream
``<token_seq>-0``: a stream rejects an ID that is not above its last one, which makes
relaying the same event twice a no-op (see ``notifier.relay``), and lets a reader resume at
any number with ``XREAD ... <n>-0``.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from core.models import JobStatus

__all__ = [
    "EVENT_COLUMNS",
    "LOG_EVENT",
    "TERMINAL_JOB_EVENTS",
    "Row",
    "render",
    "seq_of",
    "stream_id",
]

TERMINAL_JOB_EVENTS = frozenset(f"job.{s.value}" for s in JobStatus if s.terminal)
LOG_EVENT = "task.log"

# Columns ``render`` and the relay need, for every query that reads events.
EVENT_COLUMNS = (
    "e.job_id, e.seq, e.token_seq, e.type, e.task_id, e.attempt, e.data::text AS data, e.created_at"
)


class Row(Protocol):
    """A database row (``databases`` Record or a mapping) with the ``EVENT_COLUMNS``."""

    def __getitem__(self, key: str) -> Any: ...


def render(row: Row) -> str:
    """One event as the compact JSON that is a stream entry's ``event`` field and SSE ``data``."""
    data = row["data"]
    return json.dumps(
        {
            "job_id": str(row["job_id"]),
            "seq": int(row["seq"]),
            "type": row["type"],
            "task_id": None if row["task_id"] is None else str(row["task_id"]),
            "attempt": row["attempt"],
            "data": json.loads(data) if isinstance(data, str) else data,
            "created_at": row["created_at"].isoformat(),
        },
        separators=(",", ":"),
        sort_keys=True,
    )


def stream_id(seq: int) -> str:
    return f"{seq}-0"


def seq_of(entry_id: str | bytes) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])
