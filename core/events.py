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
from enum import StrEnum
from typing import Any, Protocol

from core.models import JobStatus

__all__ = [
    "EVENT_COLUMNS",
    "TERMINAL_JOB_EVENTS",
    "EventType",
    "Row",
    "render",
    "seq_of",
    "stream_id",
]


class EventType(StrEnum):
    """Every type of event (``events.type``, a stream entry's ``type``, the SSE ``event:``).

    The values are the wire format (docs/events.md); a member compares equal to its value,
    so a type read back from Postgres or Redis as a string matches it.
    """

    JOB_QUEUED = "job.queued"
    JOB_RUNNING = "job.running"
    JOB_SUCCEEDED = "job.succeeded"
    JOB_FAILED = "job.failed"
    JOB_CANCELLED = "job.cancelled"
    TASK_QUEUED = "task.queued"
    TASK_RUNNING = "task.running"
    TASK_RETRYING = "task.retrying"
    TASK_SUCCEEDED = "task.succeeded"
    TASK_FAILED = "task.failed"
    TASK_CANCELLED = "task.cancelled"
    # A map task made its instances (data: count, max_parallel); each instance's own
    # events follow under its own task id, named <map task>[<index>].
    TASK_MAPPED = "task.mapped"
    # One live output line: on the job's log stream and in its SSE feed, never in Postgres.
    TASK_LOG = "task.log"

    @classmethod
    def job_ended(cls, status: JobStatus) -> EventType:
        """The event of a job reaching the terminal ``status``."""
        if not status.terminal:
            raise ValueError(f"job status {status} is not terminal")
        return cls(f"job.{status.value}")


TERMINAL_JOB_EVENTS = frozenset(EventType.job_ended(s) for s in JobStatus if s.terminal)

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
