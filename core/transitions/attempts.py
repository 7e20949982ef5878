"""The runner's side: claiming an attempt, keeping its lease, finishing it.

Fenced: a write about attempt N applies only while N is the task's latest attempt and
still running, so a runner that stalled past its lease cannot overwrite a newer attempt.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import asyncpg
from databases import Database
from databases.core import Connection

from core import storable
from core.events import EventType
from core.models import JSON, AttemptStatus, FailureKind, JobStatus, TaskStatus
from core.outbox import record_event
from core.transitions import fanout
from core.transitions.common import lock_job_of_task, now
from core.transitions.settle import conclude_attempt
from core.transitions.types import Aftermath, Claim, Heartbeat, Outcome
from plugins.tasktypes import MAP_INPUT

log = logging.getLogger(__name__)


async def claim_attempt(
    db: Database,
    task_id: str,
    *,
    runner_id: str,
    lease_seconds: float,
    labels: Sequence[str] = (),
) -> Claim | None:
    """Start the next attempt of a queued task; None if it is not claimable now.

    A queue entry for a task that is no longer queued (already running elsewhere, finished,
    cancelled) is stale: the caller acknowledges it and moves on. A task that ``runs_on``
    a label this runner (``labels``) lacks is not claimable by it either: the queue routes
    by labels, and this is the check that holds even if the queue were wrong.
    """
    async with db.connection() as conn, conn.transaction():
        await lock_job_of_task(conn, task_id)
        task = await conn.fetch_one(
            "SELECT t.id, t.job_id, t.name, t.type, t.payload, t.status, t.attempts,"
            " t.timeout_s, t.not_before, t.runs_on, t.cpus, t.memory_mb, t.network,"
            " t.map_parent, t.map_index, t.map_item,"
            " j.status AS job_status, j.token_id, t.secrets,"
            " COALESCE(t.files, (SELECT m.files FROM tasks m WHERE m.id = t.map_parent)) AS files"
            " FROM tasks t JOIN jobs j ON j.id = t.job_id WHERE t.id = :id FOR UPDATE OF t",
            {"id": task_id},
        )
        if task is None or task["status"] != TaskStatus.QUEUED.value:
            return None
        if task["not_before"] is not None and task["not_before"] > now():
            return None
        if not set(task["runs_on"] or ()) <= set(labels):
            return None
        attempt = int(task["attempts"]) + 1
        lease = now() + timedelta(seconds=lease_seconds)
        job_id = str(task["job_id"])
        await conn.execute(
            "UPDATE tasks SET status = :running, attempts = :attempt, not_before = NULL,"
            " started_at = COALESCE(started_at, clock_timestamp()),"
            " updated_at = clock_timestamp() WHERE id = :id",
            {"running": TaskStatus.RUNNING.value, "attempt": attempt, "id": task_id},
        )
        await conn.execute(
            "INSERT INTO attempts (task_id, number, runner_id, status, lease_expires_at)"
            " VALUES (:task_id, :number, :runner_id, :status, :lease)",
            {
                "task_id": task_id,
                "number": attempt,
                "runner_id": runner_id,
                "status": AttemptStatus.RUNNING.value,
                "lease": lease,
            },
        )
        if task["job_status"] == JobStatus.QUEUED.value:
            await conn.execute(
                "UPDATE jobs SET status = :running, updated_at = clock_timestamp() WHERE id = :id",
                {"running": JobStatus.RUNNING.value, "id": job_id},
            )
            await record_event(
                conn, job_id, EventType.JOB_RUNNING, {"status": JobStatus.RUNNING.value}
            )
        await record_event(
            conn,
            job_id,
            EventType.TASK_RUNNING,
            {"status": TaskStatus.RUNNING.value, "name": task["name"], "runner_id": runner_id},
            task_id=task_id,
            attempt=attempt,
        )
        # A map instance sees its map task's upstream outputs, and its own item.
        upstream = await conn.fetch_all(
            "SELECT t.name, t.output FROM task_dependencies d JOIN tasks t ON t.id = d.depends_on"
            " WHERE d.task_id = :id",
            {"id": str(task["map_parent"] or task_id)},
        )
    inputs: dict[str, JSON] = {
        row["name"]: (json.loads(row["output"]) if row["output"] is not None else None)
        for row in upstream
    }
    if task["map_parent"] is not None:
        item = json.loads(task["map_item"]) if task["map_item"] is not None else None
        inputs[MAP_INPUT] = {"index": int(task["map_index"]), "item": item}
    return Claim(
        job_id=job_id,
        token_id=str(task["token_id"]),
        task_id=task_id,
        task_name=task["name"],
        task_type=task["type"],
        payload=json.loads(task["payload"]),
        attempt=attempt,
        timeout_s=task["timeout_s"],
        network=task["network"],
        lease_expires_at=lease,
        cpus=task["cpus"],
        memory_mb=task["memory_mb"],
        inputs=inputs,
        secrets=tuple(task["secrets"] or ()),
        files=json.loads(task["files"]) if task["files"] is not None else {},
    )


async def heartbeat(db: Database, task_id: str, attempt: int, *, lease_seconds: float) -> Heartbeat:
    """Extend an attempt's lease; tell the runner whether to keep going: not if its job is
    being cancelled, nor if it is a map instance whose map task has ended (a sibling failed
    for good), the backstop for a cancel signal the queue Redis lost."""
    row = await db.fetch_one(
        "UPDATE attempts a SET lease_expires_at = clock_timestamp() + make_interval(secs => :secs)"
        " FROM tasks t JOIN jobs j ON j.id = t.job_id"
        " WHERE a.task_id = :task_id AND a.number = :attempt AND a.status = :running"
        " AND t.id = a.task_id AND t.attempts = a.number"
        f" RETURNING j.cancel_requested OR {fanout.ENDED_PARENT_SQL} AS cancel_requested",
        {
            "secs": lease_seconds,
            "task_id": task_id,
            "attempt": attempt,
            "running": AttemptStatus.RUNNING.value,
        },
    )
    if row is None:
        return Heartbeat(alive=False, cancel_requested=False)
    return Heartbeat(alive=True, cancel_requested=bool(row["cancel_requested"]))


async def record_container(
    db: Database, task_id: str, attempt: int, container_id: str, engine_id: str | None = None
) -> bool:
    """Note which container, on which engine, runs an attempt (so cleanup can find it); fenced."""
    row = await db.fetch_val(
        "UPDATE attempts SET container_id = :cid, engine_id = :engine"
        " WHERE task_id = :task_id AND number = :attempt AND status = :running RETURNING number",
        {
            "cid": container_id,
            "engine": engine_id,
            "task_id": task_id,
            "attempt": attempt,
            "running": AttemptStatus.RUNNING.value,
        },
    )
    return row is not None


async def finish_attempt(
    db: Database,
    task_id: str,
    attempt: int,
    outcome: Outcome,
    *,
    retry_base_seconds: float = 1.0,
    retry_max_seconds: float = 60.0,
) -> Aftermath:
    """Persist an attempt's result and move the task (and maybe the job) on.

    Fenced: if ``attempt`` is no longer the task's running attempt, nothing is written and
    ``applied`` is False. One result row per attempt, enforced by the primary key.

    A result that cannot be stored (JSON that does not encode, a value Postgres refuses:
    the runner checks outputs first, but an error text or a plugin's value may still hold
    what no column takes) fails the attempt as ``output`` instead, in a second
    transaction: a refusal must end the attempt, not leave it running until its lease
    runs out and it is retried as lost. Anything else (Postgres down) is raised.
    """
    retry = {"retry_base_seconds": retry_base_seconds, "retry_max_seconds": retry_max_seconds}
    try:
        output = None if outcome.output is None else json.dumps(outcome.output, allow_nan=False)
    except (ValueError, TypeError, RecursionError) as exc:
        refused: Exception = exc
    else:
        try:
            return await _finish(db, task_id, attempt, outcome, output, **retry)
        except (asyncpg.DataError, UnicodeEncodeError) as exc:
            # SQLSTATE class 22 (data exception), or a str asyncpg cannot encode: the same
            # values are refused every time, so trying again cannot help.
            refused = exc
    reason = f"{type(refused).__name__}: {refused}"
    log.warning("task %s attempt %d: result refused (%s)", task_id, attempt, reason)
    stored = Outcome(
        AttemptStatus.FAILED,
        exit_code=outcome.exit_code,
        stdout=outcome.stdout,
        stdout_truncated=outcome.stdout_truncated,
        stderr=outcome.stderr,
        stderr_truncated=outcome.stderr_truncated,
        error=storable.text(f"the attempt's result cannot be stored ({reason})"),
        failure_kind=FailureKind.OUTPUT,
    )
    return await _finish(db, task_id, attempt, stored, None, **retry)


async def _finish(
    db: Database,
    task_id: str,
    attempt: int,
    outcome: Outcome,
    output: str | None,
    *,
    retry_base_seconds: float,
    retry_max_seconds: float,
) -> Aftermath:
    async with db.connection() as conn, conn.transaction():
        task = await _lock_running_attempt(conn, task_id, attempt)
        if task is None:
            return Aftermath(applied=False)
        await conn.execute(
            "INSERT INTO results (task_id, attempt, exit_code, stdout, stdout_truncated, stderr,"
            " stderr_truncated, output, error) VALUES (:task_id, :attempt, :exit_code, :stdout,"
            " :stdout_truncated, :stderr, :stderr_truncated, CAST(:output AS jsonb), :error)",
            {
                "task_id": task_id,
                "attempt": attempt,
                "exit_code": outcome.exit_code,
                # A task may print anything; a text column holds no NUL.
                "stdout": storable.text(outcome.stdout),
                "stdout_truncated": outcome.stdout_truncated,
                "stderr": storable.text(outcome.stderr),
                "stderr_truncated": outcome.stderr_truncated,
                "output": output,
                "error": outcome.error,
            },
        )
        return await conclude_attempt(
            conn,
            task,
            attempt,
            outcome.status,
            exit_code=outcome.exit_code,
            output=outcome.output,
            error=outcome.error,
            failure_kind=outcome.failure_kind,
            retry_base_seconds=retry_base_seconds,
            retry_max_seconds=retry_max_seconds,
        )


async def expire_leases(
    db: Database, *, retry_base_seconds: float = 1.0, retry_max_seconds: float = 60.0
) -> Aftermath:
    """Mark attempts whose lease ran out as lost and retry their tasks elsewhere."""
    total = Aftermath()
    expired = await db.fetch_all(
        "SELECT a.task_id, a.number FROM attempts a JOIN tasks t ON t.id = a.task_id"
        " WHERE a.status = :running AND a.lease_expires_at < clock_timestamp()"
        " AND t.attempts = a.number",
        {"running": AttemptStatus.RUNNING.value},
    )
    for row in expired:
        task_id, attempt = str(row["task_id"]), int(row["number"])
        async with db.connection() as conn, conn.transaction():
            task = await _lock_running_attempt(conn, task_id, attempt, expired_only=True)
            if task is None:
                continue
            after = await conclude_attempt(
                conn,
                task,
                attempt,
                AttemptStatus.LOST,
                error="the runner lost its lease (stopped, crashed or cut off)",
                failure_kind=FailureKind.INFRASTRUCTURE,
                retry_base_seconds=retry_base_seconds,
                retry_max_seconds=retry_max_seconds,
            )
        total.ready += after.ready
        total.cancel_running += after.cancel_running
    return total


async def _lock_running_attempt(
    conn: Connection, task_id: str, attempt: int, *, expired_only: bool = False
) -> Mapping[str, Any] | None:
    await lock_job_of_task(conn, task_id)
    task = await conn.fetch_one(
        "SELECT t.id, t.job_id, t.name, t.status, t.attempts, t.max_attempts, t.priority,"
        " t.runs_on, t.map_parent, j.cancel_requested, j.token_id"
        " FROM tasks t JOIN jobs j ON j.id = t.job_id"
        " WHERE t.id = :id FOR UPDATE OF t",
        {"id": task_id},
    )
    if task is None or task["attempts"] != attempt or task["status"] != TaskStatus.RUNNING.value:
        return None
    row = await conn.fetch_one(
        "SELECT status, lease_expires_at FROM attempts WHERE task_id = :id AND number = :n",
        {"id": task_id, "n": attempt},
    )
    if row is None or row["status"] != AttemptStatus.RUNNING.value:
        return None
    if expired_only and row["lease_expires_at"] >= now():
        return None
    return dict(task._mapping)
