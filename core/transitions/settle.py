"""Where an attempt's end leads: retry, success, failure, cancellation, the job's end."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from databases.core import Connection

from core import backoff
from core.events import EventType
from core.models import JSON, AttemptStatus, FailureKind, JobStatus, TaskStatus
from core.outbox import record_event
from core.transitions import fanout
from core.transitions.common import now, output_summary
from core.transitions.types import MAX_INFRASTRUCTURE_RETRIES, Aftermath, ReadyTask

# Full jitter: the tasks one failing dependency broke together must not retry together.
RETRY_JITTER = 1.0


async def conclude_attempt(
    conn: Connection,
    task: Mapping[str, Any],
    attempt: int,
    status: AttemptStatus,
    *,
    exit_code: int | None = None,
    output: JSON = None,
    error: str | None = None,
    failure_kind: FailureKind | None = None,
    retry_base_seconds: float,
    retry_max_seconds: float,
) -> Aftermath:
    task_id, job_id, token_id = str(task["id"]), str(task["job_id"]), str(task["token_id"])
    await conn.execute(
        "UPDATE attempts SET status = :status, finished_at = clock_timestamp(),"
        " exit_code = :exit_code, failure_kind = :kind, error = :error"
        " WHERE task_id = :id AND number = :n",
        {
            "status": status.value,
            "exit_code": exit_code,
            "kind": failure_kind.value if failure_kind else None,
            "error": error,
            "id": task_id,
            "n": attempt,
        },
    )
    after = Aftermath()
    failed_for_good = False
    base = {"name": task["name"], "exit_code": exit_code}
    if status == AttemptStatus.SUCCEEDED:
        await set_task(conn, task_id, TaskStatus.SUCCEEDED, output=output)
        await record_event(
            conn,
            job_id,
            EventType.TASK_SUCCEEDED,
            {**base, "status": TaskStatus.SUCCEEDED.value, "output": output_summary(output)},
            task_id=task_id,
            attempt=attempt,
        )
        after.ready = await _promote_dependents(conn, job_id, token_id, task_id)
    elif status == AttemptStatus.CANCELLED or task["cancel_requested"]:
        # Not the job: an instance stopped because its map task ended without it.
        reason = "job cancelled" if task["cancel_requested"] else "its map task ended"
        await set_task(conn, task_id, TaskStatus.CANCELLED, error=error or "cancelled")
        await record_event(
            conn,
            job_id,
            EventType.TASK_CANCELLED,
            {**base, "status": TaskStatus.CANCELLED.value, "reason": reason},
            task_id=task_id,
            attempt=attempt,
        )
    elif await _may_retry(conn, task, failure_kind) and not await fanout.parent_ended(conn, task):
        delay = backoff.delay(attempt, retry_base_seconds, retry_max_seconds, jitter=RETRY_JITTER)
        not_before = now() + timedelta(seconds=delay)
        await conn.execute(
            "UPDATE tasks SET status = :queued, not_before = :nb, error = :error,"
            " updated_at = clock_timestamp() WHERE id = :id",
            {"queued": TaskStatus.QUEUED.value, "nb": not_before, "error": error, "id": task_id},
        )
        await record_event(
            conn,
            job_id,
            EventType.TASK_RETRYING,
            {
                **base,
                "status": TaskStatus.QUEUED.value,
                "error": error,
                "failure_kind": failure_kind.value if failure_kind else None,
                "retry_at": not_before.isoformat(),
            },
            task_id=task_id,
            attempt=attempt,
        )
        after.ready = [
            ReadyTask(
                task_id,
                token_id,
                int(task["priority"]),
                not_before,
                runs_on=tuple(task["runs_on"] or ()),
            )
        ]
        return after
    else:
        failed_for_good = True
        await set_task(conn, task_id, TaskStatus.FAILED, error=error)
        await record_event(
            conn,
            job_id,
            EventType.TASK_FAILED,
            {
                **base,
                "status": TaskStatus.FAILED.value,
                "error": error,
                "failure_kind": failure_kind.value if failure_kind else None,
            },
            task_id=task_id,
            attempt=attempt,
        )
        await _cancel_downstream(conn, job_id, task_id, reason=f"dependency {task['name']} failed")
    if task.get("map_parent") is not None:  # an instance ended: its map task moves on
        after.ready += await fanout.advance(conn, str(task["map_parent"]), job_id, token_id)
        if failed_for_good:  # it failed the map task: its siblings still running stop
            after.cancel_running += await fanout.orphans(conn, str(task["map_parent"]))
    after.job_status = await settle_job(conn, job_id)
    return after


async def _may_retry(
    conn: Connection, task: Mapping[str, Any], failure_kind: FailureKind | None
) -> bool:
    counts = await conn.fetch_one(
        "SELECT count(*) FILTER (WHERE failure_kind = :infra) AS infra,"
        " count(*) FILTER (WHERE failure_kind IS DISTINCT FROM :infra AND status <> :running)"
        " AS own FROM attempts WHERE task_id = :id",
        {
            "infra": FailureKind.INFRASTRUCTURE.value,
            "running": AttemptStatus.RUNNING.value,
            "id": str(task["id"]),
        },
    )
    assert counts is not None
    if failure_kind == FailureKind.INFRASTRUCTURE:
        return int(counts["infra"]) <= MAX_INFRASTRUCTURE_RETRIES
    if failure_kind in (FailureKind.PAYLOAD, FailureKind.OUTPUT, FailureKind.ARTIFACTS):
        return False  # deterministic: the same payload or command fails the same way
    return int(counts["own"]) < int(task["max_attempts"])


async def set_task(
    conn: Connection,
    task_id: str,
    status: TaskStatus,
    *,
    output: JSON = None,
    error: str | None = None,
) -> None:
    await conn.execute(
        "UPDATE tasks SET status = :status, output = CAST(:output AS jsonb),"
        " output_bytes = octet_length(CAST(:output AS jsonb)::text), error = :error,"
        " not_before = NULL, finished_at = clock_timestamp(), updated_at = clock_timestamp()"
        " WHERE id = :id",
        {
            "status": status.value,
            "output": None if output is None else json.dumps(output),
            "error": error,
            "id": task_id,
        },
    )


async def _promote_dependents(
    conn: Connection, job_id: str, token_id: str, task_id: str
) -> list[ReadyTask]:
    """Queue every pending dependent whose dependencies have all succeeded."""
    rows = await conn.fetch_all(
        "SELECT t.id, t.name, t.priority, t.runs_on, t.map_spec IS NOT NULL AS is_map"
        " FROM tasks t"
        " JOIN task_dependencies d ON d.task_id = t.id"
        " WHERE d.depends_on = :id AND t.status = :pending"
        " AND NOT EXISTS (SELECT 1 FROM task_dependencies d2 JOIN tasks u ON u.id = d2.depends_on"
        "   WHERE d2.task_id = t.id AND u.status <> :succeeded)"
        " ORDER BY t.name FOR UPDATE OF t",
        {
            "id": task_id,
            "pending": TaskStatus.PENDING.value,
            "succeeded": TaskStatus.SUCCEEDED.value,
        },
    )
    ready = []
    for row in rows:
        if row["is_map"]:  # a map task is not run itself: its instances are
            ready += await fanout.expand(conn, str(row["id"]), job_id, token_id)
            continue
        await conn.execute(
            "UPDATE tasks SET status = :queued, updated_at = clock_timestamp() WHERE id = :id",
            {"queued": TaskStatus.QUEUED.value, "id": row["id"]},
        )
        await record_event(
            conn,
            job_id,
            EventType.TASK_QUEUED,
            {"status": TaskStatus.QUEUED.value, "name": row["name"]},
            task_id=str(row["id"]),
        )
        ready.append(
            ReadyTask(
                str(row["id"]),
                token_id,
                int(row["priority"]),
                runs_on=tuple(row["runs_on"] or ()),
            )
        )
    return ready


async def _cancel_downstream(conn: Connection, job_id: str, task_id: str, *, reason: str) -> None:
    """Cancel every task that (transitively) depends on ``task_id`` and has not started."""
    rows = await conn.fetch_all(
        "WITH RECURSIVE downstream(id) AS ("
        "  SELECT task_id FROM task_dependencies WHERE depends_on = :id"
        "  UNION SELECT d.task_id FROM task_dependencies d JOIN downstream ds"
        "  ON d.depends_on = ds.id)"
        " SELECT t.id, t.name FROM tasks t JOIN downstream ds ON ds.id = t.id"
        " WHERE t.status IN (:pending, :queued) ORDER BY t.name FOR UPDATE OF t",
        {"id": task_id, "pending": TaskStatus.PENDING.value, "queued": TaskStatus.QUEUED.value},
    )
    for row in rows:
        await set_task(conn, str(row["id"]), TaskStatus.CANCELLED, error=reason)
        await record_event(
            conn,
            job_id,
            EventType.TASK_CANCELLED,
            {"status": TaskStatus.CANCELLED.value, "name": row["name"], "reason": reason},
            task_id=str(row["id"]),
        )


async def settle_job(conn: Connection, job_id: str) -> JobStatus | None:
    """If every task is terminal, give the job its terminal status (once)."""
    job = await conn.fetch_one(
        "SELECT status, cancel_requested FROM jobs WHERE id = :id FOR UPDATE", {"id": job_id}
    )
    assert job is not None
    if JobStatus(job["status"]).terminal:
        return JobStatus(job["status"])
    rows = await conn.fetch_all(
        "SELECT status, count(*) AS n FROM tasks WHERE job_id = :id GROUP BY status",
        {"id": job_id},
    )
    counts = {TaskStatus(r["status"]): int(r["n"]) for r in rows}
    if any(not status.terminal for status in counts):
        return None
    if set(counts) == {TaskStatus.SUCCEEDED}:
        final = JobStatus.SUCCEEDED
    elif counts.get(TaskStatus.FAILED) and not job["cancel_requested"]:
        final = JobStatus.FAILED
    elif counts.get(TaskStatus.CANCELLED) or job["cancel_requested"]:
        final = JobStatus.CANCELLED if not counts.get(TaskStatus.FAILED) else JobStatus.FAILED
    else:
        final = JobStatus.FAILED
    await conn.execute(
        "UPDATE jobs SET status = :status, finished_at = clock_timestamp(),"
        " updated_at = clock_timestamp() WHERE id = :id",
        {"status": final.value, "id": job_id},
    )
    await record_event(conn, job_id, EventType.job_ended(final), {"status": final.value})
    return final
