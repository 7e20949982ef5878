"""A map task's instances as the API reads them: its counts in a task's view, and pages.

The counts are one grouped query per map task (the ``tasks_map_instances`` index), so a
job's view stays small whatever the number of instances; the instances themselves are
read a page at a time, in item order, with the job view's bound on each output.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

from core.consistency import Reads
from core.db import Row
from core.jsondepth import TOO_DEEP, too_deep_sql
from wire import JOB_VIEW_OUTPUT_BYTES, Instance, InstancePage, MapState, TaskStatus

__all__ = [
    "MAP_COLUMNS",
    "decode_cursor",
    "encode_cursor",
    "list_instances",
    "map_fields",
]

# What a task's view says of its fan-out, as columns of the task row ``t``.
MAP_COLUMNS = (
    "t.map_spec IS NOT NULL AS is_map, t.max_parallel, t.map_spec ->> 'over' AS map_over,"
    " jsonb_array_length(t.map_spec -> 'over_items') AS map_over_items, t.map_index,"
    " (SELECT m.name FROM tasks m WHERE m.id = t.map_parent) AS map_of,"
    " CASE WHEN t.map_spec IS NOT NULL THEN (SELECT jsonb_object_agg(c.status, c.n) FROM"
    "  (SELECT i.status, count(*) AS n FROM tasks i WHERE i.map_parent = t.id"
    "   GROUP BY i.status) c) END AS map_counts"
)


def map_fields(row: Row) -> dict[str, Any]:
    """A task's ``map``, ``map_of`` and ``map_index`` from ``MAP_COLUMNS``."""
    fields: dict[str, Any] = {"map_of": row["map_of"], "map_index": row["map_index"]}
    if row["is_map"]:
        raw = row["map_counts"]
        counts = {str(k): int(v) for k, v in (json.loads(raw) if raw else {}).items()}
        fields["map"] = MapState(
            over=row["map_over"],
            over_items=row["map_over_items"],
            max_parallel=row["max_parallel"],
            instances=sum(counts.values()),
            counts=counts,
        )
    return fields


def encode_cursor(index: int) -> str:
    return base64.urlsafe_b64encode(json.dumps(["i", index]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """Raise ``ValueError`` for anything that is not a cursor this API handed out."""
    try:
        tag, index = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a valid cursor ({type(exc).__name__})") from None
    if tag != "i" or not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ValueError("not a valid cursor")
    return index


def _instance(row: Row) -> Instance:
    output, error = row["output"], row["error"]
    if row["output_too_deep"]:
        note = f"output not shown: it {TOO_DEEP}"
        output, error = None, note if error is None else f"{error}; {note}"
    elif isinstance(output, str):
        output = json.loads(output)
    item = row["map_item"]
    return Instance(
        index=int(row["map_index"]),
        id=str(row["id"]),
        name=row["name"],
        status=TaskStatus(row["status"]),
        item=json.loads(item) if isinstance(item, str) else item,
        attempt_count=int(row["attempts"]),
        retry_at=row["not_before"],
        output=output,
        output_bytes=row["output_bytes"],
        error=error,
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


async def list_instances(
    reads: Reads,
    token_id: str,
    job_id: str,
    task_id: str,
    *,
    statuses: Sequence[str] = (),
    limit: int,
    after: int | None = None,
) -> InstancePage | None:
    """A page of a map task's instances, in item order; None if this token has no such
    map task (a task that is not a map has no instances: that is None too)."""
    owner = await reads.one(
        token_id,
        "SELECT 1 AS found FROM tasks t JOIN jobs j ON j.id = t.job_id WHERE t.id = :id"
        " AND t.job_id = :job AND j.token_id = :token AND t.map_spec IS NOT NULL",
        {"id": task_id, "job": job_id, "token": token_id},
    )
    if owner is None:
        return None
    where = ["t.map_parent = :id"]
    values: dict[str, Any] = {"id": task_id, "limit": limit + 1}
    if statuses:
        names = [f"s{i}" for i in range(len(statuses))]
        where.append(f"t.status IN ({', '.join(':' + n for n in names)})")
        values.update(zip(names, statuses, strict=True))
    if after is not None:
        where.append("t.map_index > :after")
        values["after"] = after
    rows = await reads.all(
        token_id,
        "SELECT t.id, t.name, t.status, t.map_index, t.map_item, t.attempts, t.not_before,"
        " t.output_bytes, t.error, t.started_at, t.finished_at,"
        f" CASE WHEN t.output_bytes <= {JOB_VIEW_OUTPUT_BYTES} THEN t.output END AS output,"
        f" CASE WHEN t.output_bytes <= {JOB_VIEW_OUTPUT_BYTES}"
        f" THEN {too_deep_sql('t.output')} END AS output_too_deep"
        f" FROM tasks t WHERE {' AND '.join(where)} ORDER BY t.map_index LIMIT :limit",
        values,
    )
    page = rows[:limit]
    more = len(rows) > limit and bool(page)
    return InstancePage(
        instances=[_instance(r) for r in page],
        next_cursor=encode_cursor(int(page[-1]["map_index"])) if more else None,
    )
