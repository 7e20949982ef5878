"""Schedules and their recorded ticks, outside the tick transaction (``transitions.scheduling``).

Every statement is scoped to the asking token: another token's schedule is not found.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
from databases import Database

from core.consistency import Reads
from core.db import Row

__all__ = [
    "COLUMNS",
    "NameTaken",
    "create",
    "delete",
    "get",
    "list_page",
    "recent_ticks",
    "update",
]

COLUMNS = (
    "s.id, s.name, s.cron, s.timezone, s.job, s.overlap, s.catchup, s.paused, s.next_tick,"
    " s.created_at, s.updated_at"
)
TICKS_SHOWN = 20


class NameTaken(Exception):
    """The token already has a schedule of that name."""


async def create(
    db: Database,
    *,
    token_id: str,
    name: str,
    cron: str,
    timezone: str,
    job: Mapping[str, Any],
    overlap: str,
    catchup: str,
    paused: bool,
    next_tick: datetime,
) -> str:
    schedule_id = str(uuid.uuid4())
    try:
        await db.execute(
            "INSERT INTO schedules (id, token_id, name, cron, timezone, job, overlap, catchup,"
            " paused, next_tick) VALUES (:id, :token, :name, :cron, :tz, CAST(:job AS jsonb),"
            " :overlap, :catchup, :paused, :next)",
            {
                "id": schedule_id,
                "token": token_id,
                "name": name,
                "cron": cron,
                "tz": timezone,
                "job": json.dumps(dict(job)),
                "overlap": overlap,
                "catchup": catchup,
                "paused": paused,
                "next": next_tick,
            },
        )
    except asyncpg.UniqueViolationError:
        raise NameTaken(name) from None
    return schedule_id


async def get(reads: Reads, token_id: str, schedule_id: str) -> Row | None:
    return await reads.one(
        token_id,
        f"SELECT {COLUMNS} FROM schedules s WHERE s.id = :id AND s.token_id = :token",
        {"id": schedule_id, "token": token_id},
    )


async def list_page(
    reads: Reads, token_id: str, *, limit: int, after: tuple[datetime, str] | None
) -> list[Row]:
    """Up to ``limit + 1`` of the token's schedules, newest first (the extra one: more follow)."""
    where = "s.token_id = :token"
    values: dict[str, Any] = {"token": token_id, "limit": limit + 1}
    if after is not None:
        where += " AND (s.created_at, s.id) < (:after_at, CAST(:after_id AS uuid))"
        values["after_at"], values["after_id"] = after
    return await reads.all(
        token_id,
        f"SELECT {COLUMNS} FROM schedules s WHERE {where}"
        " ORDER BY s.created_at DESC, s.id DESC LIMIT :limit",
        values,
    )


async def update(db: Database, token_id: str, schedule_id: str, changes: Mapping[str, Any]) -> bool:
    """Apply ``changes`` (column -> value; ``job`` as a mapping); False if not found.

    Column names come from the caller's fixed list, never from the request.
    """
    sets = ["updated_at = clock_timestamp()"]
    values: dict[str, Any] = {"id": schedule_id, "token": token_id}
    for column, value in changes.items():
        if column == "job":
            sets.append("job = CAST(:job AS jsonb)")
            values["job"] = json.dumps(dict(value))
        else:
            sets.append(f"{column} = :{column}")
            values[column] = value
    try:
        found = await db.fetch_val(
            f"UPDATE schedules SET {', '.join(sets)} WHERE id = :id AND token_id = :token"
            " RETURNING true",
            values,
        )
    except asyncpg.UniqueViolationError:
        raise NameTaken(str(changes.get("name"))) from None
    return bool(found)


async def delete(db: Database, token_id: str, schedule_id: str) -> bool:
    """Remove the schedule and its ticks; its jobs stay (their schedule_id becomes null)."""
    found = await db.fetch_val(
        "DELETE FROM schedules WHERE id = :id AND token_id = :token RETURNING true",
        {"id": schedule_id, "token": token_id},
    )
    return bool(found)


async def recent_ticks(
    reads: Reads, token_id: str, schedule_ids: Sequence[str], limit: int = TICKS_SHOWN
) -> dict[str, list[Row]]:
    """The newest ``limit`` ticks of each schedule, newest first, in one query."""
    if not schedule_ids:
        return {}
    rows = await reads.all(
        token_id,
        "SELECT schedule_id, tick, outcome, reason, manual, job_id FROM ("
        "  SELECT *, row_number() OVER (PARTITION BY schedule_id ORDER BY tick DESC) AS n"
        "  FROM schedule_ticks WHERE schedule_id = ANY(CAST(:ids AS uuid[]))) newest"
        " WHERE n <= :limit ORDER BY schedule_id, tick DESC",
        {"ids": list(schedule_ids), "limit": limit},
    )
    found: dict[str, list[Row]] = {str(i): [] for i in schedule_ids}
    for row in rows:
        found[str(row["schedule_id"])].append(row)
    return found
