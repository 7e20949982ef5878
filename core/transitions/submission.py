"""Accepting a job: the job, its tasks and their dependency edges in one transaction."""

from __future__ import annotations

import json
import uuid
from typing import Any

from databases import Database
from databases.core import Connection

from core.events import EventType
from core.models import JobStatus, TaskStatus
from core.outbox import record_event
from core.store import artifacts as artifact_store
from core.transitions import fanout
from core.transitions.settle import settle_job
from core.transitions.types import Created, IdempotencyConflict, NewJob, NewTask, ReadyTask


def initial_status(task: NewTask, reused: set[str]) -> TaskStatus:
    """Succeeded if a re-run took it over; queued if everything it needs has succeeded."""
    if task.reused is not None:
        return TaskStatus.SUCCEEDED
    return TaskStatus.PENDING if set(task.depends_on) - reused else TaskStatus.QUEUED


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
    async with db.connection() as conn, conn.transaction():
        return await insert_job(
            conn, job, token_id=token_id, idempotency_key=idempotency_key, request_hash=request_hash
        )


async def insert_job(
    conn: Connection,
    job: NewJob,
    *,
    token_id: str,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    job_id: str | None = None,
) -> Created:
    """``create_job``'s statements, in the caller's transaction (a schedule's tick claims
    its tick in the same one, ``core.transitions.scheduling``)."""
    job_id = job_id or str(uuid.uuid4())
    inserted = await conn.fetch_val(
        "INSERT INTO jobs (id, token_id, name, labels, callback_url, status,"
        " idempotency_key, request_hash, rerun_of, schedule_id, scheduled_for, keep)"
        " VALUES (:id, :token_id, :name, CAST(:labels AS jsonb), :callback_url, :status,"
        " :key, :hash, :rerun_of, :schedule_id, :scheduled_for, :keep)"
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
            "rerun_of": job.rerun_of,
            "schedule_id": job.schedule_id,
            "scheduled_for": job.scheduled_for,
            "keep": job.keep,
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
    reused = {task.name for task in job.tasks if task.reused is not None}
    status = {task.name: initial_status(task, reused) for task in job.tasks}
    for task in job.tasks:
        output = None if task.reused is None else json.dumps(task.reused.output)
        await conn.execute(
            "INSERT INTO tasks (id, job_id, name, type, payload, status, priority,"
            " timeout_s, max_attempts, reused_from, output, output_bytes, finished_at,"
            " runs_on, cpus, memory_mb, network, secrets, map_spec, max_parallel, files)"
            " VALUES (:id, :job_id, :name, :type, CAST(:payload AS jsonb), :status,"
            " :priority, :timeout_s, :max_attempts, :reused_from, CAST(:output AS jsonb),"
            " octet_length(CAST(:output AS jsonb)::text), CASE WHEN"
            " CAST(:reused_from AS uuid) IS NULL THEN NULL ELSE clock_timestamp() END,"
            " :runs_on, :cpus, :memory_mb, :network, :secrets,"
            " CAST(:map_spec AS jsonb), :max_parallel, CAST(:files AS jsonb))",
            {
                "id": ids[task.name],
                "job_id": job_id,
                "name": task.name,
                "type": task.type,
                "payload": json.dumps(dict(task.payload)),
                "status": status[task.name].value,
                "priority": task.priority,
                "timeout_s": task.timeout_s,
                "max_attempts": task.max_attempts,
                "reused_from": None if task.reused is None else task.reused.task_id,
                "output": output,
                "runs_on": sorted(set(task.runs_on)),
                "cpus": task.cpus,
                "memory_mb": task.memory_mb,
                "network": task.network,
                "secrets": list(task.secrets),
                "map_spec": _map_spec(task),
                "max_parallel": None if task.map is None else task.map.max_parallel,
                "files": json.dumps(dict(task.files)) if task.files else None,
            },
        )
    if reused:  # a re-run's taken-over tasks keep their artifacts (downstream reads them)
        await artifact_store.copy_reused(conn, job_id)
    for task in job.tasks:
        for upstream in task.depends_on:
            await conn.execute(
                "INSERT INTO task_dependencies (task_id, depends_on) VALUES (:t, :d)",
                {"t": ids[task.name], "d": ids[upstream]},
            )
    await record_event(
        conn,
        job_id,
        EventType.JOB_QUEUED,
        {
            "status": JobStatus.QUEUED.value,
            "name": job.name,
            "tasks": [
                {
                    "id": ids[t.name],
                    "name": t.name,
                    "type": t.type,
                    "status": status[t.name].value,
                }
                for t in job.tasks
            ],
        },
    )
    ready = []
    mapped = False
    for task in job.tasks:
        if status[task.name] is TaskStatus.QUEUED and task.map is not None:
            ready += await fanout.expand(conn, ids[task.name], job_id, token_id)
            mapped = True
        elif status[task.name] is TaskStatus.QUEUED:
            await record_event(
                conn,
                job_id,
                EventType.TASK_QUEUED,
                {"status": TaskStatus.QUEUED.value, "name": task.name},
                task_id=ids[task.name],
            )
            ready.append(
                ReadyTask(ids[task.name], token_id, task.priority, runs_on=tuple(task.runs_on))
            )
    if mapped:  # a map over a re-run's taken-over list may have ended (and the job with it)
        await settle_job(conn, job_id)
    return Created(job_id=job_id, created=True, ready=ready)


def _map_spec(task: NewTask) -> str | None:
    """A map task's spec as stored: where its list comes from and the bound it was
    accepted under (``core.transitions.fanout`` reads it)."""
    if task.map is None:
        return None
    spec: dict[str, Any] = {"max_items": task.map.max_items}
    if task.map.items is not None:
        spec["over_items"] = list(task.map.items)
    else:
        spec["over"] = task.map.over
    return json.dumps(spec)
