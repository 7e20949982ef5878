"""Runners as Postgres sees them: who holds a live lease, and on what (the dashboard's
system page). A runner has no row of its own; an attempt's lease is its heartbeat."""

from __future__ import annotations

from core.consistency import Reads
from core.db import Row
from wire import AttemptStatus

__all__ = ["alive"]

# Every live lease, with the task and job it runs; names only where the token owns the job
# (an admin token sees all), so another tenant's work shows as a count, not its names.
_ALIVE = (
    "SELECT a.runner_id, a.started_at, a.lease_expires_at,"
    " CASE WHEN j.token_id = :token OR :admin THEN t.name END AS task_name,"
    " CASE WHEN j.token_id = :token OR :admin THEN t.job_id END AS job_id,"
    " CASE WHEN j.token_id = :token OR :admin THEN j.name END AS job_name"
    " FROM attempts a JOIN tasks t ON t.id = a.task_id JOIN jobs j ON j.id = t.job_id"
    " WHERE a.status = :running AND a.lease_expires_at > now() AND t.attempts = a.number"
    " ORDER BY a.runner_id, a.started_at LIMIT :limit"
)


async def alive(reads: Reads, token_id: str, *, admin: bool, limit: int = 500) -> list[Row]:
    """The running attempts whose lease holds, by runner (at most ``limit``)."""
    values = {
        "token": token_id,
        "admin": admin,
        "running": AttemptStatus.RUNNING.value,
        "limit": limit,
    }
    return list(await reads.all(token_id, _ALIVE, values))
