"""Accepting a job: the job, its tasks and their dependency edges in one transaction."""

from __future__ import annotations

import json
import uuid

from databases import Database

from core.events import EventType
from core.models import JobStatus, TaskStatus
from core.outbox import record_event
from core.transitions.types import Created, IdempotencyConflict, NewJob, ReadyTask


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
            EventType.JOB_QUEUED,
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
                    EventType.TASK_QUEUED,
                    {"status": TaskStatus.QUEUED.value, "name": task.name},
                    task_id=ids[task.name],
                )
                ready.append(ReadyTask(ids[task.name], task.priority))
    return Created(job_id=job_id, created=True, ready=ready)
