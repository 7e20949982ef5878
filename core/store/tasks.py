"""What the queue side reads of tasks and attempts: the state machine writes them."""

from __future__ import annotations

from dataclasses import dataclass

from databases import Database
from databases.core import Connection
from databases.interfaces import Record

from core.models import AttemptStatus, TaskStatus
from core.transitions.types import ReadyTask

__all__ = [
    "LostContainer",
    "lost_containers",
    "mark_container_gone",
    "queued",
    "queued_batch",
    "running_attempts",
    "summaries",
]


async def queued(db: Database, task_id: str) -> ReadyTask | None:
    """The task as the queue should hold it while Postgres has it queued; else None."""
    row = await db.fetch_one(
        "SELECT t.priority, t.not_before, t.runs_on, j.token_id FROM tasks t"
        " JOIN jobs j ON j.id = t.job_id"
        " WHERE t.id = :id AND t.status = :queued",
        {"id": task_id, "queued": TaskStatus.QUEUED.value},
    )
    if row is None:
        return None
    return ReadyTask(
        task_id,
        str(row["token_id"]),
        int(row["priority"]),
        row["not_before"],
        runs_on=tuple(row["runs_on"] or ()),
    )


async def queued_batch(db: Database, limit: int) -> list[ReadyTask]:
    """Up to ``limit`` queued tasks, in the order the queue would run them.

    That order is by turn between tokens (each token's first task, then each one's second,
    ...), priority only within a token: a token with a backlog larger than ``limit`` must
    not keep every other token's tasks out of a refilled queue, pass after pass.
    """
    rows = await db.fetch_all(
        "SELECT id, token_id, priority, not_before, runs_on FROM ("
        "  SELECT t.id, j.token_id, t.priority, t.not_before, t.runs_on, t.created_at,"
        "   row_number() OVER (PARTITION BY j.token_id ORDER BY t.priority DESC, t.created_at)"
        "   AS turn"
        "  FROM tasks t JOIN jobs j ON j.id = t.job_id WHERE t.status = :queued) q"
        " ORDER BY turn, priority DESC, created_at LIMIT :n",
        {"queued": TaskStatus.QUEUED.value, "n": limit},
    )
    return [
        ReadyTask(
            str(r["id"]),
            str(r["token_id"]),
            int(r["priority"]),
            r["not_before"],
            runs_on=tuple(r["runs_on"] or ()),
        )
        for r in rows
    ]


async def running_attempts(db: Database) -> set[tuple[str, int]]:
    """(task id, attempt number) of every attempt that is running and still its task's latest."""
    rows = await db.fetch_all(
        "SELECT a.task_id, a.number FROM attempts a JOIN tasks t ON t.id = a.task_id"
        " WHERE a.status = :running AND t.attempts = a.number",
        {"running": AttemptStatus.RUNNING.value},
    )
    return {(str(r["task_id"]), int(r["number"])) for r in rows}


@dataclass(frozen=True)
class LostContainer:
    """The container of a lost attempt that nobody has yet seen gone."""

    task_id: str
    attempt: int
    container_id: str
    engine_id: str | None
    lost_for_seconds: float  # by Postgres' clock, so runners' clocks do not matter


async def lost_containers(db: Database, task_id: str) -> list[LostContainer]:
    """The task's lost attempts whose container may still run."""
    rows = await db.fetch_all(
        "SELECT number, container_id, engine_id,"
        " extract(epoch FROM clock_timestamp() - finished_at) AS lost_for FROM attempts"
        " WHERE task_id = :id AND status = :lost AND container_id IS NOT NULL"
        " AND container_gone_at IS NULL ORDER BY number",
        {"id": task_id, "lost": AttemptStatus.LOST.value},
    )
    return [
        LostContainer(
            task_id,
            int(r["number"]),
            str(r["container_id"]),
            r["engine_id"],
            float(r["lost_for"] or 0.0),
        )
        for r in rows
    ]


async def mark_container_gone(db: Database, task_id: str, attempt: int) -> None:
    """Record that the attempt's container no longer runs (idempotent)."""
    await db.execute(
        "UPDATE attempts SET container_gone_at = clock_timestamp()"
        " WHERE task_id = :id AND number = :n AND container_gone_at IS NULL",
        {"id": task_id, "n": attempt},
    )


async def summaries(conn: Database | Connection, job_id: str) -> list[Record]:
    """A job's tasks as a webhook reports them: id, name, type, status, attempts, error.

    A map task's instances are left out (a webhook stays small for a 10,000-item map)."""
    return await conn.fetch_all(
        "SELECT id, name, type, status, attempts, error FROM tasks WHERE job_id = :id"
        " AND map_parent IS NULL ORDER BY created_at, name",
        {"id": job_id},
    )
