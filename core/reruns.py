"""Re-running a job: a new job made from the original's body, linked both ways.

``POST /v1/jobs/{id}/rerun`` runs the whole job again (Argo's *resubmit*). With
``?from=failed`` (Argo's *retry*) only what did not succeed runs again: every task that
succeeded in the original is taken over as succeeded, with its output, and not run; the
failed and cancelled tasks and everything downstream of them run, and see the taken-over
outputs as if their upstream tasks had just run. A succeeded task's upstream tasks all
succeeded too, so what is taken over is always closed under dependencies.

The body is rebuilt from the rows the original was made of and validated again as any new
job is: a re-run of a job whose task type has since gone, or that the operator's limits no
longer admit, is refused with the same 422 a new submission would get.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from databases import Database

from core.jsondepth import TOO_DEEP, too_deep_sql
from core.models import JobStatus, TaskStatus
from core.transitions import NewJob, Reused

__all__ = ["NothingToRerun", "Original", "OutputTooDeep", "body_of", "load", "plan"]


class NothingToRerun(Exception):
    """``from=failed`` on a job whose every task succeeded."""


class OutputTooDeep(Exception):
    """``from=failed`` would take over an output stored before the depth bound existed."""


@dataclass(frozen=True)
class OriginalTask:
    id: str
    name: str
    type: str
    payload: dict[str, Any]
    depends_on: list[str]
    timeout_s: int | None
    max_attempts: int
    priority: int
    status: TaskStatus
    output: Any  # None when too deep to decode (``output_too_deep``)
    output_too_deep: bool
    # Runner groups and resources, as submitted (a re-run asks for the same).
    runs_on: list[str] = field(default_factory=list)
    cpus: float | None = None
    memory_mb: int | None = None
    network: str = "none"
    secrets: tuple[str, ...] = ()
    files: dict[str, str] = field(default_factory=dict)  # name -> base64, as submitted
    # A map task's body ``map`` (its instances are not tasks of the body): a re-run from
    # failed runs a failed map task again whole, every instance (docs/api.md).
    map: dict[str, Any] | None = None


@dataclass(frozen=True)
class Original:
    id: str
    name: str | None
    labels: dict[str, str]
    callback_url: str | None
    status: JobStatus
    tasks: list[OriginalTask]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def load(db: Database, token_id: str, job_id: str) -> Original | None:
    """The job as it was submitted, with how each task ended; None if not this token's."""
    job = await db.fetch_one(
        "SELECT id, name, labels, callback_url, status FROM jobs"
        " WHERE id = :id AND token_id = :token",
        {"id": job_id, "token": token_id},
    )
    if job is None:
        return None
    rows = await db.fetch_all(
        "SELECT t.id, t.name, t.type, t.payload, t.timeout_s, t.max_attempts, t.priority,"
        " t.runs_on, t.cpus, t.memory_mb, t.files,"
        f" t.network, t.secrets, t.status, t.output, {too_deep_sql('t.output')} AS output_too_deep,"
        " COALESCE((SELECT array_agg(u.name ORDER BY u.name)"
        "   FROM task_dependencies d JOIN tasks u ON u.id = d.depends_on"
        "   WHERE d.task_id = t.id), '{}') AS depends_on"
        ", t.map_spec - 'max_items' AS map_spec, t.max_parallel"
        " FROM tasks t WHERE t.job_id = :id AND t.map_parent IS NULL"
        " ORDER BY t.created_at, t.name",
        {"id": job_id},
    )
    return Original(
        id=str(job["id"]),
        name=job["name"],
        labels=_json(job["labels"]) or {},
        callback_url=job["callback_url"],
        status=JobStatus(job["status"]),
        tasks=[
            OriginalTask(
                id=str(r["id"]),
                name=r["name"],
                type=r["type"],
                payload=_json(r["payload"]),
                depends_on=list(r["depends_on"] or ()),
                timeout_s=r["timeout_s"],
                max_attempts=int(r["max_attempts"]),
                priority=int(r["priority"]),
                status=TaskStatus(r["status"]),
                # Decoding it is what would fail (core.jsondepth); only rows stored
                # before the bound existed can be that deep.
                output=None if r["output_too_deep"] else _json(r["output"]),
                output_too_deep=bool(r["output_too_deep"]),
                runs_on=list(r["runs_on"] or ()),
                cpus=r["cpus"],
                memory_mb=r["memory_mb"],
                network=r["network"],
                secrets=tuple(r["secrets"] or ()),
                files=_json(r["files"]) or {},
                map=_map_body(r["map_spec"], r["max_parallel"]),
            )
            for r in rows
        ],
    )


def _map_body(spec: Any, max_parallel: int | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    body: dict[str, Any] = dict(_json(spec))
    if max_parallel is not None:
        body["max_parallel"] = max_parallel
    return body


def body_of(original: Original) -> dict[str, Any]:
    """The submission body the original job is made of, for the validator."""
    tasks: list[dict[str, Any]] = []
    for task in original.tasks:
        body: dict[str, Any] = {
            "name": task.name,
            "type": task.type,
            "payload": task.payload,
            "max_attempts": task.max_attempts,
            "priority": task.priority,
        }
        if task.depends_on:
            body["depends_on"] = task.depends_on
        if task.timeout_s is not None:
            body["timeout_s"] = task.timeout_s
        if task.runs_on:
            body["runs_on"] = task.runs_on
        resources = {
            k: v for k, v in (("cpus", task.cpus), ("memory_mb", task.memory_mb)) if v is not None
        }
        if resources:
            body["resources"] = resources
        if task.network != "none":
            # Validated again: a re-run asks for egress only where it is still allowed.
            body["network"] = task.network
        if task.secrets:
            body["secrets"] = list(task.secrets)
        if task.files:
            body["files"] = dict(task.files)
        if task.map is not None:
            body["map"] = task.map
        tasks.append(body)
    job: dict[str, Any] = {"tasks": tasks, "labels": original.labels}
    if original.name is not None:
        job["name"] = original.name
    if original.callback_url is not None:
        job["callback_url"] = original.callback_url
    return job


def plan(original: Original, validated: NewJob, *, from_failed: bool) -> NewJob:
    """The re-run of ``original``: all of it, or (``from_failed``) what did not succeed."""
    taken_over: dict[str, Reused] = {}
    if from_failed:
        taken_over = {
            t.name: Reused(t.id, t.output)
            for t in original.tasks
            if t.status is TaskStatus.SUCCEEDED
        }
        if len(taken_over) == len(original.tasks):
            raise NothingToRerun(f"every task of job {original.id} succeeded")
        deep = [t.name for t in original.tasks if t.name in taken_over and t.output_too_deep]
        if deep:
            raise OutputTooDeep(
                f"task {deep[0]!r} of job {original.id} succeeded with an output that {TOO_DEEP},"
                " stored before that bound: it cannot be taken over; re-run all of the job"
            )
    tasks = [replace(t, reused=taken_over.get(t.name)) for t in validated.tasks]
    return replace(validated, tasks=tasks, rerun_of=original.id)
