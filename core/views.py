"""What the API shows of jobs, tasks and attempts: the queries and the models they become.

The shapes are the ``wire`` models; this module only fills them from rows.

Every query is scoped to the asking token (``token_id``): another token's job is simply
not found. Reads go through ``core.consistency.Reads`` (replica, or the primary when the
token wrote recently), or straight to the primary right after a write.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from core import runnergroups
from core.consistency import Reads
from core.db import Row
from core.instances import MAP_COLUMNS, map_fields
from core.jsondepth import TOO_DEEP, too_deep_sql
from wire import (
    JOB_VIEW_OUTPUT_BYTES,
    Attempt,
    AttemptDetail,
    AttemptStatus,
    FailureKind,
    Job,
    JobStatus,
    JobSummary,
    Resources,
    Result,
    Task,
    TaskDetail,
    TaskStatus,
)

__all__ = [
    "JOB_COLUMNS",
    "list_jobs",
    "load_attempt",
    "load_job",
    "load_task",
    "to_attempt_detail",
    "to_job",
    "to_summary",
    "to_task",
    "to_task_detail",
]

JOB_COLUMNS = (
    "j.id, j.name, j.status, j.labels, j.callback_url, j.cancel_requested,"
    " j.created_at, j.updated_at, j.finished_at, j.rerun_of, j.schedule_id, j.scheduled_for,"
    " j.keep"
)
# A job's view names its newest re-runs; GET /v1/jobs?rerun_of= pages through all of them.
RERUNS_SHOWN = 20
_TASK_FIELDS = (
    "t.id, t.job_id, t.name, t.type, t.status, t.priority, t.timeout_s, t.max_attempts,"
    " t.attempts, t.not_before, t.output_bytes, t.error, t.created_at, t.updated_at,"
    " t.started_at, t.finished_at, t.reused_from, t.runs_on, t.cpus, t.memory_mb,"
    " COALESCE((SELECT array_agg(u.name ORDER BY u.name)"
    "   FROM task_dependencies d JOIN tasks u ON u.id = d.depends_on"
    "   WHERE d.task_id = t.id), '{}') AS depends_on,"
    f" {MAP_COLUMNS}"
)
# A job's view leaves large outputs in Postgres: its size is bounded by the task count.
# Whether an output nests too deep to decode is asked only of the outputs it shows.
_JOB_TASK_COLUMNS = (
    f"{_TASK_FIELDS}, CASE WHEN t.output_bytes <= {JOB_VIEW_OUTPUT_BYTES} THEN t.output END"
    f" AS output, CASE WHEN t.output_bytes <= {JOB_VIEW_OUTPUT_BYTES}"
    f" THEN {too_deep_sql('t.output')} END AS output_too_deep"
)
_TASK_COLUMNS = f"{_TASK_FIELDS}, t.output, {too_deep_sql('t.output')} AS output_too_deep"


_ATTEMPT_COLUMNS = (
    "a.number, a.runner_id, a.status, a.container_id, a.lease_expires_at, a.started_at,"
    " a.finished_at, a.exit_code, a.failure_kind, a.error"
)
_RESULT_COLUMNS = (
    "r.attempt AS r_attempt, r.exit_code AS r_exit_code, r.stdout AS r_stdout,"
    " r.stdout_truncated AS r_stdout_truncated, r.stderr AS r_stderr,"
    " r.stderr_truncated AS r_stderr_truncated, r.output AS r_output, r.error AS r_error,"
    f" {too_deep_sql('r.output')} AS r_output_too_deep, r.created_at AS r_created_at"
)


def _json(value: Any) -> Any:
    # asyncpg hands jsonb over as text through `databases`.
    return json.loads(value) if isinstance(value, str) else value


def _output(value: Any, too_deep: bool | None, error: str | None) -> tuple[Any, str | None]:
    """A stored output and the error shown beside it.

    An output Postgres found nesting past the bound (only rows stored before
    ``runners.outcome`` enforced it) is not decoded, which is what would fail: it is left
    out and the error says so, and the rest of the answer stays readable.
    """
    if too_deep:
        note = f"output not shown: it {TOO_DEEP}"
        return None, note if error is None else f"{error}; {note}"
    return _json(value), error


def _job_fields(row: Row) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "status": JobStatus(row["status"]),
        "labels": _json(row["labels"]) or {},
        "callback_url": row["callback_url"],
        "cancel_requested": bool(row["cancel_requested"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "finished_at": row["finished_at"],
        "rerun_of": None if row["rerun_of"] is None else str(row["rerun_of"]),
        "schedule_id": None if row["schedule_id"] is None else str(row["schedule_id"]),
        "scheduled_for": row["scheduled_for"],
        "keep": bool(row["keep"]),
    }


def to_summary(row: Row) -> JobSummary:
    return JobSummary(**_job_fields(row))


def to_job(row: Row, tasks: Sequence[Row], reruns: Sequence[str] = ()) -> Job:
    """A job row, its task rows (selected with the job view's bounded output) and the ids
    of its newest re-runs."""
    return Job(**_job_fields(row), tasks=[to_task(t) for t in tasks], reruns=list(reruns))


def _task_fields(row: Row) -> dict[str, Any]:
    output, error = _output(row["output"], row["output_too_deep"], row["error"])
    return {
        "id": str(row["id"]),
        "job_id": str(row["job_id"]),
        "name": row["name"],
        "type": row["type"],
        "status": TaskStatus(row["status"]),
        "depends_on": list(row["depends_on"] or ()),
        "priority": int(row["priority"]),
        "timeout_s": row["timeout_s"],
        "max_attempts": int(row["max_attempts"]),
        "attempt_count": int(row["attempts"]),
        "retry_at": row["not_before"],
        "output": output,
        "output_bytes": row["output_bytes"],
        "reused_from": None if row["reused_from"] is None else str(row["reused_from"]),
        "error": error,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        **_group_fields(row),
        **map_fields(row),
    }


def _group_fields(row: Row) -> dict[str, Any]:
    """Runner groups and resources: what the task asked for, and what a queued one awaits."""
    runs_on = list(row["runs_on"] or ())
    queued = row["status"] == TaskStatus.QUEUED.value
    return {
        "runs_on": runs_on,
        "resources": Resources(cpus=row["cpus"], memory_mb=row["memory_mb"]),
        "waiting_for": runnergroups.waiting_for(runs_on) if queued else None,
    }


def to_task(row: Row) -> Task:
    return Task(**_task_fields(row))


def _result(row: Mapping[str, Any]) -> Result | None:
    if row["r_attempt"] is None:
        return None
    output, error = _output(row["r_output"], row["r_output_too_deep"], row["r_error"])
    return Result(
        exit_code=row["r_exit_code"],
        stdout=row["r_stdout"],
        stdout_truncated=bool(row["r_stdout_truncated"]),
        stderr=row["r_stderr"],
        stderr_truncated=bool(row["r_stderr_truncated"]),
        output=output,
        error=error,
        created_at=row["r_created_at"],
    )


def _attempt_fields(row: Row) -> dict[str, Any]:
    kind = row["failure_kind"]
    return {
        "number": int(row["number"]),
        "runner_id": row["runner_id"],
        "status": AttemptStatus(row["status"]),
        "container_id": row["container_id"],
        "lease_expires_at": row["lease_expires_at"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "exit_code": row["exit_code"],
        "failure_kind": FailureKind(kind) if kind is not None else None,
        "error": row["error"],
    }


def to_task_detail(row: Row, attempt_rows: Sequence[Row], latest: Row | None) -> TaskDetail:
    """A task row (with ``payload``), its attempt rows, and its latest result's row."""
    return TaskDetail(
        **_task_fields(row),
        payload=_json(row["payload"]),
        attempts=[Attempt(**_attempt_fields(a)) for a in attempt_rows],
        result=_result(latest) if latest is not None else None,
    )


def to_attempt_detail(row: Row) -> AttemptDetail:
    """An attempt row joined with its result (``r_`` columns, null when it left none)."""
    return AttemptDetail(**_attempt_fields(row), result=_result(row))


async def _job_rows(
    reads: Reads, job_id: str, token_id: str, *, primary: bool
) -> tuple[Row, list[Row], list[str]] | None:
    job = await reads.db.read_one(
        f"SELECT {JOB_COLUMNS} FROM jobs j WHERE j.id = :id AND j.token_id = :token",
        {"id": job_id, "token": token_id},
        primary=primary,
    )
    if job is None:
        return None
    tasks = await reads.db.read_all(
        f"SELECT {_JOB_TASK_COLUMNS} FROM tasks t WHERE t.job_id = :id"
        " AND t.map_parent IS NULL ORDER BY t.created_at, t.name",
        {"id": job_id},
        primary=primary,
    )
    reruns = await reads.db.read_all(
        "SELECT id FROM jobs WHERE rerun_of = :id ORDER BY created_at DESC, id DESC"
        f" LIMIT {RERUNS_SHOWN}",
        {"id": job_id},
        primary=primary,
    )
    return job, tasks, [str(r["id"]) for r in reruns]


async def load_job(
    reads: Reads, token_id: str, job_id: str, *, primary: bool = False
) -> Job | None:
    """The job with its tasks, or None if this token has no such job.

    A job always has tasks, so a job missing, or seen without its tasks, on the replica
    means the replica is behind: the primary is asked before answering "not found".
    """
    primary = primary or await reads.pinned(token_id)
    found = await _job_rows(reads, job_id, token_id, primary=primary)
    if (found is None or not found[1]) and not primary and reads.db.replica is not None:
        found = await _job_rows(reads, job_id, token_id, primary=True)
    if found is None:
        return None
    return to_job(*found)


async def _task_rows(
    reads: Reads, job_id: str, task_id: str, token_id: str, *, primary: bool
) -> tuple[Row, list[Row], Row | None] | None:
    task = await reads.db.read_one(
        f"SELECT {_TASK_COLUMNS}, t.payload FROM tasks t JOIN jobs j ON j.id = t.job_id"
        " WHERE t.id = :id AND t.job_id = :job AND j.token_id = :token",
        {"id": task_id, "job": job_id, "token": token_id},
        primary=primary,
    )
    if task is None:
        return None
    attempts = await reads.db.read_all(
        f"SELECT {_ATTEMPT_COLUMNS} FROM attempts a WHERE a.task_id = :id ORDER BY a.number",
        {"id": task_id},
        primary=primary,
    )
    latest = await reads.db.read_one(
        f"SELECT {_RESULT_COLUMNS} FROM results r WHERE r.task_id = :id"
        " ORDER BY r.attempt DESC LIMIT 1",
        {"id": task_id},
        primary=primary,
    )
    return task, attempts, latest


async def load_task(reads: Reads, token_id: str, job_id: str, task_id: str) -> TaskDetail | None:
    """One task with its attempts and their results, or None."""
    primary = await reads.pinned(token_id)
    found = await _task_rows(reads, job_id, task_id, token_id, primary=primary)
    if found is None and not primary and reads.db.replica is not None:
        found = await _task_rows(reads, job_id, task_id, token_id, primary=True)
    if found is None:
        return None
    return to_task_detail(*found)


async def _attempt_row(
    reads: Reads, job_id: str, task_id: str, number: int, token_id: str, *, primary: bool
) -> Row | None:
    return await reads.db.read_one(
        f"SELECT {_ATTEMPT_COLUMNS}, {_RESULT_COLUMNS} FROM attempts a"
        " JOIN tasks t ON t.id = a.task_id JOIN jobs j ON j.id = t.job_id"
        " LEFT JOIN results r ON r.task_id = a.task_id AND r.attempt = a.number"
        " WHERE a.task_id = :id AND a.number = :number AND t.job_id = :job"
        " AND j.token_id = :token",
        {"id": task_id, "number": number, "job": job_id, "token": token_id},
        primary=primary,
    )


async def load_attempt(
    reads: Reads, token_id: str, job_id: str, task_id: str, number: int
) -> AttemptDetail | None:
    """One attempt of a task with its result, or None."""
    primary = await reads.pinned(token_id)
    found = await _attempt_row(reads, job_id, task_id, number, token_id, primary=primary)
    if found is None and not primary and reads.db.replica is not None:
        found = await _attempt_row(reads, job_id, task_id, number, token_id, primary=True)
    return to_attempt_detail(found) if found is not None else None


async def list_jobs(
    reads: Reads,
    token_id: str,
    *,
    statuses: Sequence[str] = (),
    labels: Mapping[str, str] | None = None,
    rerun_of: str | None = None,
    schedule_id: str | None = None,
    name: str | None = None,
    limit: int,
    after: tuple[datetime, str] | None = None,
) -> tuple[list[JobSummary], tuple[datetime, str] | None]:
    """A page of the token's jobs, newest first, and the position after its last one."""
    where = ["j.token_id = :token"]
    values: dict[str, Any] = {"token": token_id, "limit": limit + 1}
    if statuses:
        names = [f"s{i}" for i in range(len(statuses))]
        where.append(f"j.status IN ({', '.join(':' + n for n in names)})")
        values.update(zip(names, statuses, strict=True))
    if labels:
        # Containment uses the GIN index on labels.
        where.append("j.labels @> CAST(:labels AS jsonb)")
        values["labels"] = json.dumps(dict(labels))
    if rerun_of is not None:
        where.append("j.rerun_of = CAST(:rerun_of AS uuid)")
        values["rerun_of"] = rerun_of
    if schedule_id is not None:
        where.append("j.schedule_id = CAST(:schedule_id AS uuid)")
        values["schedule_id"] = schedule_id
    if name:
        # A case-insensitive substring (strpos, so % and _ in it are plain characters).
        where.append("strpos(lower(j.name), lower(:name)) > 0")
        values["name"] = name
    if after is not None:
        where.append("(j.created_at, j.id) < (:after_at, CAST(:after_id AS uuid))")
        values["after_at"], values["after_id"] = after
    rows = await reads.all(
        token_id,
        f"SELECT {JOB_COLUMNS} FROM jobs j WHERE {' AND '.join(where)}"
        " ORDER BY j.created_at DESC, j.id DESC LIMIT :limit",
        values,
    )
    page = rows[:limit]
    more = len(rows) > limit
    last = (page[-1]["created_at"], str(page[-1]["id"])) if more and page else None
    return [to_summary(r) for r in page], last
