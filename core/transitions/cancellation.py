"""Cancelling a job from the API."""

from __future__ import annotations

from databases import Database
from databases.core import Connection

from core.events import EventType
from core.models import JobStatus, TaskStatus
from core.outbox import record_event
from core.transitions import fanout
from core.transitions.settle import set_task, settle_job
from core.transitions.types import Aftermath


async def cancel_job(db: Database, job_id: str) -> Aftermath:
    """Cancel a job: tasks not started are cancelled now, running ones are signalled.

    Idempotent; a finished job is left as it is. The runner kills signalled containers and
    reports the attempt as cancelled, which settles the job.
    """
    async with db.connection() as conn, conn.transaction():
        return await cancel_in(conn, job_id)


async def cancel_in(conn: Connection, job_id: str) -> Aftermath:
    """``cancel_job``'s statements, in the caller's transaction (a schedule's ``replace``
    cancels the running job in the transaction that creates the next one)."""
    job = await conn.fetch_one(
        "SELECT status, token_id FROM jobs WHERE id = :id FOR UPDATE", {"id": job_id}
    )
    if job is None:
        return Aftermath(applied=False)
    if JobStatus(job["status"]).terminal:
        return Aftermath(applied=False, job_status=JobStatus(job["status"]))
    await conn.execute(
        "UPDATE jobs SET cancel_requested = true, updated_at = clock_timestamp() WHERE id = :id",
        {"id": job_id},
    )
    # Map instances are cancelled with one statement per map task (fanout.cancel_instances).
    waiting = await conn.fetch_all(
        "SELECT id, name FROM tasks WHERE job_id = :id AND status IN (:pending, :queued)"
        " AND map_parent IS NULL ORDER BY name FOR UPDATE",
        {"id": job_id, "pending": TaskStatus.PENDING.value, "queued": TaskStatus.QUEUED.value},
    )
    for row in waiting:
        await set_task(conn, str(row["id"]), TaskStatus.CANCELLED, error="cancelled")
        await record_event(
            conn,
            job_id,
            EventType.TASK_CANCELLED,
            {
                "status": TaskStatus.CANCELLED.value,
                "name": row["name"],
                "reason": "job cancelled",
            },
            task_id=str(row["id"]),
        )
    maps = await conn.fetch_all(
        "SELECT id FROM tasks WHERE job_id = :id AND status = :running AND map_spec IS NOT NULL"
        " ORDER BY name",
        {"id": job_id, "running": TaskStatus.RUNNING.value},
    )
    for row in maps:
        await fanout.cancel_instances(conn, str(row["id"]), reason="job cancelled")
        # Ends the map task now unless instances still run (their end will).
        await fanout.advance(conn, str(row["id"]), job_id, str(job["token_id"]))
    # A running map task has no attempt of its own: its running instances are signalled.
    running = await conn.fetch_all(
        "SELECT id, attempts FROM tasks WHERE job_id = :id AND status = :running"
        " AND map_spec IS NULL",
        {"id": job_id, "running": TaskStatus.RUNNING.value},
    )
    after = Aftermath(cancel_running=[(str(r["id"]), int(r["attempts"])) for r in running])
    after.job_status = await settle_job(conn, job_id)
    return after
