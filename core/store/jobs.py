"""Reads of jobs outside the state machine and the API's read models."""

from __future__ import annotations

from databases import Database

from core.consistency import Reads

__all__ = ["owned", "set_keep"]


async def owned(reads: Reads, token_id: str, job_id: str) -> bool:
    """Whether ``job_id`` exists and belongs to ``token_id`` (read as the token's reads are)."""
    row = await reads.one(
        token_id,
        "SELECT 1 AS owned FROM jobs WHERE id = :id AND token_id = :token",
        {"id": job_id, "token": token_id},
    )
    return row is not None


async def set_keep(db: Database, token_id: str, job_id: str, keep: bool) -> bool:
    """Mark the token's job kept (never deleted by retention) or not; False if no such job.

    Takes the job's row lock, so it waits for a purge batch holding the job and then finds
    it gone, or goes first and the purge passes the job over (SKIP LOCKED, then ``keep``).
    """
    updated = await db.fetch_val(
        "UPDATE jobs SET keep = :keep, updated_at = clock_timestamp()"
        " WHERE id = :id AND token_id = :token RETURNING id",
        {"id": job_id, "token": token_id, "keep": keep},
    )
    return updated is not None
