"""The purger's statements (``notifier.retention``): which jobs have expired, and their removal.

A job goes with one ``DELETE FROM jobs``: everything that belongs to it follows by
``ON DELETE CASCADE`` (migration 0070 says which keys do what), so a table added later
that references jobs or tasks with a cascade is purged without a change here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from databases import Database
from databases.core import Connection

__all__ = [
    "PURGE_LOCK_NS",
    "Counts",
    "TokenPeriod",
    "claim_expired",
    "count_children",
    "delete_jobs",
    "stream_entries",
    "take_purge_lock",
    "token_periods",
    "unlink_reruns",
]

# Namespace of the purge lock ``(PURGE_LOCK_NS, 0)``: one notifier purges at a time, so
# the load a purge adds does not grow with the number of replicas. Apart from the relay's
# (core.store.events.RELAY_LOCK_NS) and the migrations' one-key lock.
PURGE_LOCK_NS = 0x6872  # "hr"


@dataclass(frozen=True)
class TokenPeriod:
    token_id: str
    seconds: int  # > 0: a token whose jobs are kept forever is not listed


@dataclass(frozen=True)
class Counts:
    tasks: int
    attempts: int
    results: int


async def token_periods(db: Database, default_seconds: int) -> list[TokenPeriod]:
    """Every token whose jobs expire, with its period (its own, else the setting's)."""
    rows = await db.fetch_all(
        "SELECT id, COALESCE(retention_seconds, :default) AS seconds FROM tokens"
        " WHERE COALESCE(retention_seconds, :default) > 0 ORDER BY id",
        {"default": default_seconds},
    )
    return [TokenPeriod(str(r["id"]), int(r["seconds"])) for r in rows]


async def take_purge_lock(conn: Connection) -> bool:
    """The purge lock for the rest of ``conn``'s transaction; False if another holds it."""
    return bool(
        await conn.fetch_val("SELECT pg_try_advisory_xact_lock(:ns, 0)", {"ns": PURGE_LOCK_NS})
    )


async def claim_expired(conn: Connection, token_id: str, cutoff: datetime, limit: int) -> list[str]:
    """Lock up to ``limit`` of the token's jobs that finished before ``cutoff``, oldest first.

    Not claimed: kept jobs, unfinished ones, rows another transaction holds (SKIP LOCKED:
    a transition or a PATCH goes first, the job waits for the next pass), jobs whose
    events the notifier has not relayed yet (the relay would put them back in Redis after
    the purge removed them) and jobs with a webhook still to deliver.
    """
    rows = await conn.fetch_all(
        "SELECT j.id FROM jobs j"
        " WHERE j.token_id = CAST(:token AS uuid) AND j.finished_at IS NOT NULL AND NOT j.keep"
        " AND j.finished_at < :cutoff"
        " AND NOT EXISTS (SELECT 1 FROM events e WHERE e.job_id = j.id AND e.relayed_at IS NULL)"
        " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries w"
        "                 WHERE w.job_id = j.id AND w.status = 'pending')"
        " ORDER BY j.finished_at LIMIT :n FOR UPDATE OF j SKIP LOCKED",
        {"token": token_id, "cutoff": cutoff, "n": limit},
    )
    return [str(r["id"]) for r in rows]


async def stream_entries(conn: Connection, job_ids: Sequence[str]) -> list[tuple[str, int]]:
    """``(token_id, token_seq)`` of the jobs' events: their entries in the token streams."""
    rows = await conn.fetch_all(
        "SELECT token_id, token_seq FROM events WHERE job_id = ANY(CAST(:ids AS uuid[]))",
        {"ids": list(job_ids)},
    )
    return [(str(r["token_id"]), int(r["token_seq"])) for r in rows]


async def count_children(conn: Connection, job_ids: Sequence[str]) -> Counts:
    """How many tasks, attempts and results the jobs' deletion takes with it (the metric)."""
    row = await conn.fetch_one(
        "SELECT (SELECT count(*) FROM tasks t WHERE t.job_id = ANY(CAST(:ids AS uuid[]))) AS tasks,"
        " (SELECT count(*) FROM attempts a JOIN tasks t ON t.id = a.task_id"
        "   WHERE t.job_id = ANY(CAST(:ids AS uuid[]))) AS attempts,"
        " (SELECT count(*) FROM results r JOIN tasks t ON t.id = r.task_id"
        "   WHERE t.job_id = ANY(CAST(:ids AS uuid[]))) AS results",
        {"ids": list(job_ids)},
    )
    assert row is not None
    return Counts(int(row["tasks"]), int(row["attempts"]), int(row["results"]))


async def unlink_reruns(conn: Connection, job_ids: Sequence[str]) -> None:
    """Forget that other jobs are re-runs of these, before the deletion does.

    The foreign key would set rerun_of to NULL itself, but only after the cascade reached
    the re-runs' task rows (their reused_from): locking another job's tasks before that job
    breaks the one lock order (job row, then its tasks) and could deadlock a transition on
    the re-run. Taking the re-runs' job rows first keeps the order.
    """
    await conn.execute(
        "UPDATE jobs SET rerun_of = NULL WHERE rerun_of = ANY(CAST(:ids AS uuid[]))",
        {"ids": list(job_ids)},
    )


async def delete_jobs(conn: Connection, job_ids: Sequence[str]) -> int:
    """Delete the jobs; their rows in every other table go by cascade. The number deleted."""
    rows = await conn.fetch_all(
        "DELETE FROM jobs WHERE id = ANY(CAST(:ids AS uuid[])) RETURNING id",
        {"ids": list(job_ids)},
    )
    return len(rows)
