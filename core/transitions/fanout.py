"""Map tasks: making a map task's instances, and where each instance's end leads.

A map task runs once per item of a list: ``over_items`` given in the body, or the output
of the upstream task ``over``. When the map task becomes ready it is *expanded*: one task
row per item (``map_parent``, ``map_index``, ``map_item``) in one statement, the list read
by Postgres itself, never decoded here. Instances are ordinary tasks from then on (claimed,
leased, fenced by attempt number and retried alone), so everything the runner and the
reconciler do holds for them unchanged.

``max_parallel`` is enforced where instances are made ready: at most that many are queued
or running at once (a retry waiting for its back-off keeps its place); the rest stay
pending and the next one by index is queued in the transaction that ends one. Every
transition holds the job row's lock, so the count holds across runners and API processes.

The map task is running while its instances are; it succeeds when all of them did, with
their outputs as one list in item order (what its dependents receive), and fails as soon
as one instance failed for good: the instances not started are cancelled at once, and
those still running are signalled (``orphans``, handed back as ``cancel_running``) and
told again by their heartbeat (``transitions.heartbeat``), as a cancelled job's are, so a
failed map does not hold runner slots for results nobody can use. A list that is not a
list, or longer than the bound the job was accepted under, fails it with failure kind
``map`` before any instance exists.

Instance ``task.queued`` events are not written (a 10,000-item map would write 10,000 at
once): ``task.mapped`` says how many were made and how many queued; each instance's
``task.running``, ``task.retrying``, ``task.succeeded`` and ``task.failed`` follow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from databases.core import Connection

from core.events import EventType
from core.models import FailureKind, TaskStatus
from core.outbox import record_event
from core.transitions import settle
from core.transitions.types import ReadyTask

__all__ = ["ENDED_PARENT_SQL", "advance", "cancel_instances", "expand", "orphans", "parent_ended"]

# Whether the map task of the instance row ``t`` has ended: its running instances are to
# stop (false for a task that is no instance).
ENDED_PARENT_SQL = (
    "EXISTS (SELECT 1 FROM tasks p WHERE p.id = t.map_parent AND p.status IN ("
    + ", ".join(f"'{status.value}'" for status in TaskStatus if status.terminal)
    + "))"
)

# The list a map task fans out over, as a jsonb expression on its row ``p``.
_SOURCE = (
    "CASE WHEN p.map_spec -> 'over_items' IS NOT NULL THEN p.map_spec -> 'over_items'"
    " ELSE (SELECT u.output FROM tasks u WHERE u.job_id = p.job_id"
    " AND u.name = p.map_spec ->> 'over' AND u.map_parent IS NULL) END"
)


async def expand(conn: Connection, task_id: str, job_id: str, token_id: str) -> list[ReadyTask]:
    """Make a ready map task's instances; return those the queue must hear of.

    The map task may instead fail (its list is no list, or too long) or, over an empty
    list, succeed at once with ``[]`` and ready its own dependents.
    """
    row = await conn.fetch_one(
        f"SELECT p.name, p.max_parallel, CAST(p.map_spec ->> 'max_items' AS integer)"
        f" AS max_items, p.map_spec ->> 'over' AS over, jsonb_typeof(src) AS kind,"
        f" CASE WHEN jsonb_typeof(src) = 'array' THEN jsonb_array_length(src) END AS n"
        f" FROM tasks p, LATERAL (SELECT {_SOURCE} AS src) s WHERE p.id = :id FOR UPDATE OF p",
        {"id": task_id},
    )
    assert row is not None
    name, cap, count = row["name"], row["max_parallel"], row["n"]
    source = f"the output of {row['over']!r}" if row["over"] is not None else "over_items"
    if count is None:
        got = row["kind"] or "no output"
        return await _fail(conn, task_id, job_id, name, f"{source} is not a list (got {got})")
    if row["max_items"] is not None and count > int(row["max_items"]):
        return await _fail(
            conn,
            task_id,
            job_id,
            name,
            f"{source} has {count} items; a map runs at most {row['max_items']}"
            " (HOMERUN_MAX_MAP_ITEMS)",
        )
    made = await conn.fetch_all(
        # An instance runs where, as large, with the network and the secrets its map task
        # asked for: it is that task, once per item.
        "INSERT INTO tasks (id, job_id, name, type, payload, status, priority, timeout_s,"
        " max_attempts, runs_on, cpus, memory_mb, network, secrets,"
        " map_parent, map_index, map_item)"
        " SELECT gen_random_uuid(), p.job_id, p.name || '[' || (e.ord - 1) || ']', p.type,"
        " p.payload, CASE WHEN p.max_parallel IS NULL OR e.ord <= p.max_parallel"
        " THEN :queued ELSE :pending END, p.priority, p.timeout_s, p.max_attempts,"
        " p.runs_on, p.cpus, p.memory_mb, p.network, p.secrets, p.id,"
        " e.ord - 1, e.value"
        f" FROM tasks p, LATERAL (SELECT {_SOURCE} AS src) s,"
        " LATERAL jsonb_array_elements(s.src) WITH ORDINALITY AS e(value, ord)"
        " WHERE p.id = :id RETURNING id, status, priority, runs_on",
        {"id": task_id, "queued": TaskStatus.QUEUED.value, "pending": TaskStatus.PENDING.value},
    )
    if not made:
        return await _succeed(conn, task_id, job_id, token_id, name, 0)
    await conn.execute(
        "UPDATE tasks SET status = :running, started_at = clock_timestamp(),"
        " updated_at = clock_timestamp() WHERE id = :id",
        {"running": TaskStatus.RUNNING.value, "id": task_id},
    )
    queued = [r for r in made if r["status"] == TaskStatus.QUEUED.value]
    await record_event(
        conn,
        job_id,
        EventType.TASK_MAPPED,
        {
            "status": TaskStatus.RUNNING.value,
            "name": name,
            "count": len(made),
            "queued": len(queued),
            "max_parallel": cap,
        },
        task_id=task_id,
    )
    return [_ready(r, token_id) for r in queued]


async def parent_ended(conn: Connection, task: Mapping[str, Any]) -> bool:
    """Whether ``task`` is an instance whose map task has already ended (no retry then)."""
    if task.get("map_parent") is None:
        return False
    status = await conn.fetch_val(
        "SELECT status FROM tasks WHERE id = :id", {"id": str(task["map_parent"])}
    )
    return bool(TaskStatus(status).terminal)


async def advance(conn: Connection, parent_id: str, job_id: str, token_id: str) -> list[ReadyTask]:
    """After an instance ended (or the job was cancelled): end the map task, or queue the
    next pending instances up to ``max_parallel``."""
    parent = await conn.fetch_one(
        "SELECT name, status, max_parallel FROM tasks WHERE id = :id FOR UPDATE",
        {"id": parent_id},
    )
    assert parent is not None
    if TaskStatus(parent["status"]).terminal:
        return []
    rows = await conn.fetch_all(
        "SELECT status, count(*) AS n FROM tasks WHERE map_parent = :id GROUP BY status",
        {"id": parent_id},
    )
    counts = {TaskStatus(r["status"]): int(r["n"]) for r in rows}
    total = sum(counts.values())
    name = parent["name"]
    if counts.get(TaskStatus.FAILED):
        failed = await conn.fetch_one(
            "SELECT t.name, t.error, a.failure_kind FROM tasks t LEFT JOIN attempts a"
            " ON a.task_id = t.id AND a.number = t.attempts WHERE t.map_parent = :id"
            " AND t.status = :failed ORDER BY t.map_index LIMIT 1",
            {"id": parent_id, "failed": TaskStatus.FAILED.value},
        )
        assert failed is not None
        await cancel_instances(conn, parent_id, reason=f"instance {failed['name']} failed")
        kind = FailureKind(failed["failure_kind"]) if failed["failure_kind"] else None
        error = f"instance {failed['name']} failed: {failed['error']}"
        return await _fail(conn, parent_id, job_id, name, error, kind=kind)
    if counts.get(TaskStatus.SUCCEEDED, 0) == total:
        return await _succeed(conn, parent_id, job_id, token_id, name, total)
    active = counts.get(TaskStatus.QUEUED, 0) + counts.get(TaskStatus.RUNNING, 0)
    if active == 0 and not counts.get(TaskStatus.PENDING):
        # Only succeeded and cancelled instances are left: the job was cancelled.
        await settle.set_task(conn, parent_id, TaskStatus.CANCELLED, error="cancelled")
        await record_event(
            conn,
            job_id,
            EventType.TASK_CANCELLED,
            {"status": TaskStatus.CANCELLED.value, "name": name, "reason": "job cancelled"},
            task_id=parent_id,
        )
        return []
    cap = parent["max_parallel"]
    slots = counts.get(TaskStatus.PENDING, 0) if cap is None else int(cap) - active
    if slots <= 0:
        return []
    promoted = await conn.fetch_all(
        "UPDATE tasks SET status = :queued, updated_at = clock_timestamp() WHERE id IN"
        " (SELECT id FROM tasks WHERE map_parent = :id AND status = :pending"
        "  ORDER BY map_index LIMIT :slots FOR UPDATE) RETURNING id, priority, runs_on",
        {
            "queued": TaskStatus.QUEUED.value,
            "pending": TaskStatus.PENDING.value,
            "id": parent_id,
            "slots": slots,
        },
    )
    return [_ready(r, token_id) for r in promoted]


async def orphans(conn: Connection, parent_id: str) -> list[tuple[str, int]]:
    """The running instances of a map task that has ended (failed, or cancelled with its
    job): ``(task_id, attempt)`` for the runners to stop. None while it runs."""
    rows = await conn.fetch_all(
        "SELECT t.id, t.attempts FROM tasks t WHERE t.map_parent = :id AND t.status = :running"
        f" AND {ENDED_PARENT_SQL} ORDER BY t.map_index",
        {"id": parent_id, "running": TaskStatus.RUNNING.value},
    )
    return [(str(r["id"]), int(r["attempts"])) for r in rows]


def _ready(row: Any, token_id: str) -> ReadyTask:
    """An instance for the queue: in the line of its map task's runner labels."""
    return ReadyTask(
        str(row["id"]), token_id, int(row["priority"]), runs_on=tuple(row["runs_on"] or ())
    )


async def cancel_instances(conn: Connection, parent_id: str, *, reason: str) -> int:
    """Cancel a map task's instances that have not started, in one statement (no event
    each: the map task's own event says why); return how many."""
    rows = await conn.fetch_all(
        "UPDATE tasks SET status = :cancelled, error = :reason, not_before = NULL,"
        " finished_at = clock_timestamp(), updated_at = clock_timestamp()"
        " WHERE map_parent = :id AND status IN (:pending, :queued) RETURNING id",
        {
            "cancelled": TaskStatus.CANCELLED.value,
            "reason": reason,
            "id": parent_id,
            "pending": TaskStatus.PENDING.value,
            "queued": TaskStatus.QUEUED.value,
        },
    )
    return len(rows)


async def _fail(
    conn: Connection,
    task_id: str,
    job_id: str,
    name: str,
    error: str,
    *,
    kind: FailureKind | None = FailureKind.MAP,
) -> list[ReadyTask]:
    await settle.set_task(conn, task_id, TaskStatus.FAILED, error=error)
    await record_event(
        conn,
        job_id,
        EventType.TASK_FAILED,
        {
            "name": name,
            "status": TaskStatus.FAILED.value,
            "error": error,
            "failure_kind": kind.value if kind else None,
        },
        task_id=task_id,
    )
    await settle._cancel_downstream(conn, job_id, task_id, reason=f"dependency {name} failed")
    return []


async def _succeed(
    conn: Connection, task_id: str, job_id: str, token_id: str, name: str, count: int
) -> list[ReadyTask]:
    """The map task succeeds with its instances' outputs, one list in item order."""
    size = await conn.fetch_val(
        "UPDATE tasks p SET status = :succeeded, output = o.agg,"
        " output_bytes = octet_length(o.agg::text), error = NULL, not_before = NULL,"
        " started_at = COALESCE(p.started_at, clock_timestamp()),"
        " finished_at = clock_timestamp(), updated_at = clock_timestamp()"
        " FROM (SELECT COALESCE(jsonb_agg(i.output ORDER BY i.map_index), '[]'::jsonb) AS agg"
        "  FROM tasks i WHERE i.map_parent = :id) o WHERE p.id = :id RETURNING p.output_bytes",
        {"succeeded": TaskStatus.SUCCEEDED.value, "id": task_id},
    )
    await record_event(
        conn,
        job_id,
        EventType.TASK_SUCCEEDED,
        {
            "name": name,
            "status": TaskStatus.SUCCEEDED.value,
            "exit_code": None,
            "count": count,
            "output_bytes": size,
        },
        task_id=task_id,
    )
    return await settle._promote_dependents(conn, job_id, token_id, task_id)
