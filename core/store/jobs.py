"""Reads of jobs outside the state machine and the API's read models."""

from __future__ import annotations

from core.consistency import Reads

__all__ = ["owned"]


async def owned(reads: Reads, token_id: str, job_id: str) -> bool:
    """Whether ``job_id`` exists and belongs to ``token_id`` (read as the token's reads are)."""
    row = await reads.one(
        token_id,
        "SELECT 1 AS owned FROM jobs WHERE id = :id AND token_id = :token",
        {"id": job_id, "token": token_id},
    )
    return row is not None
