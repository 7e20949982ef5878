"""The job and task state machine, as transactions on the primary.

Every status change happens here, together with its event (``core.outbox``), so the API,
the runner and the reconciler cannot disagree about what a transition means. Each
function runs in one transaction and returns what the caller must do after the commit
(enqueue ready tasks, signal cancellations); Redis is only ever told about committed facts.

Attempt writes are fenced: ``tasks.attempts`` holds the number of the latest attempt, and
a write about attempt N applies only while N is still the latest and still running. A
runner that stalled past its lease and wakes up finds its writes refused.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from databases import Database
from databases.core import Connection

from core.models import JSON, AttemptStatus, FailureKind, JobStatus, TaskStatus
from core.outbox import record_event

# Infrastructure failures (lost lease, engine error) are not the task's fault and do not
# use up max_attempts, but a task that keeps killing its runner must still end.
MAX_INFRASTRUCTURE_RETRIES = 10
OUTPUT_SUMMARY_CHARS = 512


class IdempotencyConflict(Exception):
    """The idempotency key was used before with a different request body."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"idempotency key already used for job {job_id} with another body")
        self.job_id = job_id


@dataclass(frozen=True)
class NewTask:
    name: str
    type: str
    payload: Mapping[str, Any]
    depends_on: Sequence[str] = ()
    timeout_s: int | None = None
    max_attempts: int = 3
    priority: int = 0


@dataclass(frozen=True)
class NewJob:
    tasks: Sequence[NewTask]
    name: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    callback_url: str | None = None


@dataclass(frozen=True)
class ReadyTask:
    """A task the queue must be told about once the transaction committed."""

    task_id: str
    priority: int
    not_before: datetime | None = None


@dataclass(frozen=True)
class Created:
    job_id: str
    created: bool  # False when an idempotent replay returned an existing job
    ready: list[ReadyTask]


@dataclass(frozen=True)
class Claim:
    job_id: str
    task_id: str
    task_name: str
    task_type: str
    payload: dict[str, Any]
    attempt: int
    timeout_s: int | None
    lease_expires_at: datetime
    inputs: dict[str, JSON]


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended, as the runner saw it."""

    status: AttemptStatus  # SUCCEEDED, FAILED or CANCELLED
    exit_code: int | None = None
    stdout: str = ""
    stdout_truncated: bool = False
    stderr: str = ""
    stderr_truncated: bool = False
    output: JSON = None
    error: str | None = None
    failure_kind: FailureKind | None = None


@dataclass
class Aftermath:
    """What a committed transition asks of the caller."""

    applied: bool = True
    ready: list[ReadyTask] = field(default_factory=list)
    cancel_running: list[tuple[str, int]] = field(default_factory=list)  # (task_id, attempt)
    job_status: JobStatus | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def retry_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter (the AWS architecture blog's variant)."""
    return random.uniform(0, min(cap, base * 2 ** max(attempt - 1, 0)))


def _summary(output: JSON) -> JSON:
    if output is None:
        return None
    text = json.dumps(output)
    return output if len(text) <= OUTPUT_SUMMARY_CHARS else text[:OUTPUT_SUMMARY_CHARS] + "…"


# --- submission -------------------------------------------------------------------------


async def create_job(
    db: Database,
    job: NewJob,
    *,
    token_id: str,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
) -> Created:
    """Commit a job and its tasks in one transaction; name the tasks ready to queue.

    The caller has validated the job (types, schemas, dependency graph).
    """
    job_id = str(uuid.uuid4())
    async with db.connection() as conn, conn.transaction():
        inserted = await conn.fetch_val(
            "INSERT INTO jobs (id, token_id, name, labels, callback_url, status,"
            " idempotency_key, request_hash)"
            " VALUES (:id, :token_id, :name, CAST(:labels AS jsonb), :callback_url, :status,"
            " :key, :hash)"
            " ON CONFLICT (token_id, idempotency_key) DO NOTHING RETURNING id",
            {
                "id": job_id,
                "token_id": token_id,
                "name": job.name,
                "labels": json.dumps(dict(job.labels)),
                "callback_url": job.callback_url,
                "status": JobStatus.QUEUED.value,
                "key": idempotency_key,
                "hash": request_hash,
            },
        )
        if inserted is None:
            existing = await conn.fetch_one(
                "SELECT id, request_hash FROM jobs WHERE token_id = :t AND idempotency_key = :k",
                {"t": token_id, "k": idempotency_key},
            )
            assert existing is not None
            if existing["request_hash"] != request_hash:
                raise IdempotencyConflict(str(existing["id"]))
            return Created(job_id=str(existing["id"]), created=False, ready=[])

        ids = {task.name: str(uuid.uuid4()) for task in job.tasks}
        for task in job.tasks:
            await conn.execute(
                "INSERT INTO tasks (id, job_id, name, type, payload, status, priority,"
                " timeout_s, max_attempts)"
                " VALUES (:id, :job_id, :name, :type, CAST(:payload AS jsonb), :status,"
                " :priority, :timeout_s, :max_attempts)",
                {
                    "id": ids[task.name],
                    "job_id": job_id,
                    "name": task.name,
                    "type": task.type,
                    "payload": json.dumps(dict(task.payload)),
                    "status": (TaskStatus.PENDING if task.depends_on else TaskStatus.QUEUED).value,
                    "priority": task.priority,
                    "timeout_s": task.timeout_s,
                    "max_attempts": task.max_attempts,
                },
            )
        for task in job.tasks:
            for upstream in task.depends_on:
                await conn.execute(
                    "INSERT INTO task_dependencies (task_id, depends_on) VALUES (:t, :d)",
                    {"t": ids[task.name], "d": ids[upstream]},
                )
        await record_event(
            conn,
            job_id,
            "job.queued",
            {
                "status": JobStatus.QUEUED.value,
                "name": job.name,
                "tasks": [
                    {
                        "id": ids[t.name],
                        "name": t.name,
                        "type": t.type,
                        "status": (TaskStatus.PENDING if t.depends_on else TaskStatus.QUEUED).value,
                    }
                    for t in job.tasks
                ],
            },
        )
        ready = []
        for task in job.tasks:
            if not task.depends_on:
                await record_event(
                    conn,
                    job_id,
                    "task.queued",
                    {"status": TaskStatus.QUEUED.value, "name": task.name},
                    task_id=ids[task.name],
                )
                ready.append(ReadyTask(ids[task.name], task.priority))
    return Created(job_id=job_id, created=True, ready=ready)


# --- the runner's side ------------------------------------------------------------------


async def claim_attempt(
    db: Database, task_id: str, *, runner_id: str, lease_seconds: float
) -> Claim | None:
    """Start the next attempt of a queued task; None if it is not claimable now.

    A queue entry for a task that is no longer queued (already running elsewhere, finished,
    cancelled) is stale: the caller acknowledges it and moves on.
    """
    async with db.connection() as conn, conn.transaction():
        task = await conn.fetch_one(
            "SELECT t.id, t.job_id, t.name, t.type, t.payload, t.status, t.attempts,"
            " t.timeout_s, t.not_before, j.status AS job_status"
            " FROM tasks t JOIN jobs j ON j.id = t.job_id WHERE t.id = :id FOR UPDATE OF t",
            {"id": task_id},
        )
        if task is None or task["status"] != TaskStatus.QUEUED.value:
            return None
        if task["not_before"] is not None and task["not_before"] > _now():
            return None
        attempt = int(task["attempts"]) + 1
        lease = _now() + timedelta(seconds=lease_seconds)
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
            await record_event(conn, job_id, "job.running", {"status": JobStatus.RUNNING.value})
        await record_event(
            conn,
            job_id,
            "task.running",
            {"status": TaskStatus.RUNNING.value, "name": task["name"], "runner_id": runner_id},
            task_id=task_id,
            attempt=attempt,
        )
        upstream = await conn.fetch_all(
            "SELECT t.name, t.output FROM task_dependencies d JOIN tasks t ON t.id = d.depends_on"
            " WHERE d.task_id = :id",
            {"id": task_id},
        )
    return Claim(
        job_id=job_id,
        task_id=task_id,
        task_name=task["name"],
        task_type=task["type"],
        payload=json.loads(task["payload"]),
        attempt=attempt,
        timeout_s=task["timeout_s"],
        lease_expires_at=lease,
        inputs={
            row["name"]: (json.loads(row["output"]) if row["output"] is not None else None)
            for row in upstream
        },
    )


@dataclass(frozen=True)
class Heartbeat:
    alive: bool  # False: the lease is lost or the attempt was superseded; stop and clean up
    cancel_requested: bool


async def heartbeat(db: Database, task_id: str, attempt: int, *, lease_seconds: float) -> Heartbeat:
    """Extend an attempt's lease; tell the runner whether to keep going."""
    row = await db.fetch_one(
        "UPDATE attempts a SET lease_expires_at = clock_timestamp() + make_interval(secs => :secs)"
        " FROM tasks t JOIN jobs j ON j.id = t.job_id"
        " WHERE a.task_id = :task_id AND a.number = :attempt AND a.status = :running"
        " AND t.id = a.task_id AND t.attempts = a.number"
        " RETURNING j.cancel_requested",
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


async def record_container(db: Database, task_id: str, attempt: int, container_id: str) -> bool:
    """Note which container runs an attempt (so cleanup can find it); fenced."""
    row = await db.fetch_val(
        "UPDATE attempts SET container_id = :cid WHERE task_id = :task_id AND number = :attempt"
        " AND status = :running RETURNING number",
        {
            "cid": container_id,
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
    """
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
                # Postgres text cannot hold NUL; a task may print anything.
                "stdout": outcome.stdout.replace("\x00", "\ufffd"),
                "stdout_truncated": outcome.stdout_truncated,
                "stderr": outcome.stderr.replace("\x00", "\ufffd"),
                "stderr_truncated": outcome.stderr_truncated,
                "output": None if outcome.output is None else json.dumps(outcome.output),
                "error": outcome.error,
            },
        )
        return await _conclude_attempt(
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
            after = await _conclude_attempt(
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
    return total


async def _lock_running_attempt(
    conn: Connection, task_id: str, attempt: int, *, expired_only: bool = False
) -> Mapping[str, Any] | None:
    task = await conn.fetch_one(
        "SELECT t.id, t.job_id, t.name, t.status, t.attempts, t.max_attempts, t.priority,"
        " j.cancel_requested FROM tasks t JOIN jobs j ON j.id = t.job_id"
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
    if expired_only and row["lease_expires_at"] >= _now():
        return None
    return task


async def _conclude_attempt(
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
    task_id, job_id = str(task["id"]), str(task["job_id"])
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
    base = {"name": task["name"], "exit_code": exit_code}
    if status == AttemptStatus.SUCCEEDED:
        await _set_task(conn, task_id, TaskStatus.SUCCEEDED, output=output)
        await record_event(
            conn,
            job_id,
            "task.succeeded",
            {**base, "status": TaskStatus.SUCCEEDED.value, "output": _summary(output)},
            task_id=task_id,
            attempt=attempt,
        )
        after.ready = await _promote_dependents(conn, job_id, task_id)
    elif status == AttemptStatus.CANCELLED or task["cancel_requested"]:
        await _set_task(conn, task_id, TaskStatus.CANCELLED, error=error or "cancelled")
        await record_event(
            conn,
            job_id,
            "task.cancelled",
            {**base, "status": TaskStatus.CANCELLED.value, "reason": "job cancelled"},
            task_id=task_id,
            attempt=attempt,
        )
    elif await _may_retry(conn, task, failure_kind):
        delay = retry_delay(attempt, retry_base_seconds, retry_max_seconds)
        not_before = _now() + timedelta(seconds=delay)
        await conn.execute(
            "UPDATE tasks SET status = :queued, not_before = :nb, error = :error,"
            " updated_at = clock_timestamp() WHERE id = :id",
            {"queued": TaskStatus.QUEUED.value, "nb": not_before, "error": error, "id": task_id},
        )
        await record_event(
            conn,
            job_id,
            "task.retrying",
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
        after.ready = [ReadyTask(task_id, int(task["priority"]), not_before)]
        return after
    else:
        await _set_task(conn, task_id, TaskStatus.FAILED, error=error)
        await record_event(
            conn,
            job_id,
            "task.failed",
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
    after.job_status = await _settle_job(conn, job_id)
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
    return int(counts["own"]) < int(task["max_attempts"])


async def _set_task(
    conn: Connection,
    task_id: str,
    status: TaskStatus,
    *,
    output: JSON = None,
    error: str | None = None,
) -> None:
    await conn.execute(
        "UPDATE tasks SET status = :status, output = CAST(:output AS jsonb), error = :error,"
        " not_before = NULL, finished_at = clock_timestamp(), updated_at = clock_timestamp()"
        " WHERE id = :id",
        {
            "status": status.value,
            "output": None if output is None else json.dumps(output),
            "error": error,
            "id": task_id,
        },
    )


async def _promote_dependents(conn: Connection, job_id: str, task_id: str) -> list[ReadyTask]:
    """Queue every pending dependent whose dependencies have all succeeded."""
    rows = await conn.fetch_all(
        "SELECT t.id, t.name, t.priority FROM tasks t"
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
        await conn.execute(
            "UPDATE tasks SET status = :queued, updated_at = clock_timestamp() WHERE id = :id",
            {"queued": TaskStatus.QUEUED.value, "id": row["id"]},
        )
        await record_event(
            conn,
            job_id,
            "task.queued",
            {"status": TaskStatus.QUEUED.value, "name": row["name"]},
            task_id=str(row["id"]),
        )
        ready.append(ReadyTask(str(row["id"]), int(row["priority"])))
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
        await _set_task(conn, str(row["id"]), TaskStatus.CANCELLED, error=reason)
        await record_event(
            conn,
            job_id,
            "task.cancelled",
            {"status": TaskStatus.CANCELLED.value, "name": row["name"], "reason": reason},
            task_id=str(row["id"]),
        )


async def _settle_job(conn: Connection, job_id: str) -> JobStatus | None:
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
    await record_event(conn, job_id, f"job.{final.value}", {"status": final.value}, )
    return final


# --- the API's side ---------------------------------------------------------------------


async def cancel_job(db: Database, job_id: str) -> Aftermath:
    """Cancel a job: tasks not started are cancelled now, running ones are signalled.

    Idempotent; a finished job is left as it is. The runner kills signalled containers and
    reports the attempt as cancelled, which settles the job.
    """
    async with db.connection() as conn, conn.transaction():
        job = await conn.fetch_one(
            "SELECT status FROM jobs WHERE id = :id FOR UPDATE", {"id": job_id}
        )
        if job is None:
            return Aftermath(applied=False)
        if JobStatus(job["status"]).terminal:
            return Aftermath(applied=False, job_status=JobStatus(job["status"]))
        await conn.execute(
            "UPDATE jobs SET cancel_requested = true, updated_at = clock_timestamp()"
            " WHERE id = :id",
            {"id": job_id},
        )
        waiting = await conn.fetch_all(
            "SELECT id, name FROM tasks WHERE job_id = :id AND status IN (:pending, :queued)"
            " ORDER BY name FOR UPDATE",
            {"id": job_id, "pending": TaskStatus.PENDING.value, "queued": TaskStatus.QUEUED.value},
        )
        for row in waiting:
            await _set_task(conn, str(row["id"]), TaskStatus.CANCELLED, error="cancelled")
            await record_event(
                conn,
                job_id,
                "task.cancelled",
                {"status": TaskStatus.CANCELLED.value, "name": row["name"], "reason": "job cancelled"},
                task_id=str(row["id"]),
            )
        running = await conn.fetch_all(
            "SELECT id, attempts FROM tasks WHERE job_id = :id AND status = :running",
            {"id": job_id, "running": TaskStatus.RUNNING.value},
        )
        after = Aftermath(cancel_running=[(str(r["id"]), int(r["attempts"])) for r in running])
        after.job_status = await _settle_job(conn, job_id)
    return after
