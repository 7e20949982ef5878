"""The dashboard's pages (GET): jobs, a job, a task, a map task's instances, task types,
system (submit, schedules and secrets have modules of their own).

Each reads through the JSON API's endpoint functions (``core.ui.calls``) or, where the API
has no JSON answer for it (a job's events are an SSE stream; the system page's figures),
through the same ``core.store`` / ``core.queue`` functions the API uses. A page whose
address carries filters redirects to the address without the empty ones, so what a person
bookmarks is what the API would be asked.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from core import events as event_model
from core import queue
from core.endpoints import artifacts, instances, jobs, schedules, task_types
from core.errors import ApiError
from core.state import get_state
from core.store import events as event_store
from core.store import runners
from core.ui.calls import call, read
from core.ui.web import render, signed_in
from wire import (
    ArtifactList,
    InstancePage,
    JobPage,
    JobStatus,
    SchedulePage,
    TaskDetail,
    TaskStatus,
    TaskTypeList,
)
from wire import Job as JobModel

__all__ = ["routes"]

# The query parameters of /ui/jobs, all handed to GET /v1/jobs as they are.
JOB_FILTERS = ("status", "label", "name", "schedule", "limit", "cursor")
# A job's events timeline shows at most this many (a job has a handful per task).
EVENTS_SHOWN = 1000
SCHEDULES_IN_FILTER = 200
RECENT_FAILURES = 10


async def home(request: Request) -> Response:
    return RedirectResponse("/ui/jobs", status_code=303)


def _job_query(request: Request) -> list[tuple[str, str]]:
    return [
        (k, v.strip())
        for k, v in request.query_params.multi_items()
        if k in JOB_FILTERS and v.strip()
    ]


async def _schedule_choices(request: Request) -> list[tuple[str, str]]:
    page = await read(
        request, schedules.list_schedules, SchedulePage, query=[("limit", str(SCHEDULES_IN_FILTER))]
    )
    return [(s.id, s.name) for s in page.schedules]


async def _job_rows(request: Request) -> dict[str, Any]:
    query = _job_query(request)
    error: ApiError | None = None
    try:
        page = await read(request, jobs.list_jobs, JobPage, query=query)
    except ApiError as exc:
        if exc.status != 400:
            raise
        error, page = exc, JobPage(jobs=[], next_cursor=None)
    paging = [(k, v) for k, v in query if k != "cursor"]
    return {
        "page": page,
        "error": error,
        "query": urlencode(query),
        "next_query": urlencode([*paging, ("cursor", page.next_cursor)])
        if page.next_cursor
        else None,
        "first_query": urlencode(paging) if any(k == "cursor" for k, _ in query) else None,
    }


@signed_in
async def jobs_page(request: Request) -> Response:
    raw = [(k, v) for k, v in request.query_params.multi_items()]
    if raw != [(k, v) for k, v in raw if k in JOB_FILTERS and v.strip()]:
        return RedirectResponse(f"/ui/jobs?{urlencode(_job_query(request))}", status_code=303)
    params = request.query_params
    context = await _job_rows(request)
    context.update(
        statuses=[s.value for s in JobStatus],
        chosen=params.getlist("status"),
        labels=" ".join(params.getlist("label")),
        name=params.get("name", ""),
        schedule=params.get("schedule", ""),
        schedules=await _schedule_choices(request),
    )
    return render(request, "jobs.html", context)


@signed_in
async def job_rows(request: Request) -> Response:
    """The table body alone: what the live update swaps in."""
    return render(request, "job_rows.html", await _job_rows(request))


async def _job_context(request: Request) -> dict[str, Any]:
    job = await read(request, jobs.get_job, JobModel)
    state = get_state(request)
    rows = await event_store.job_feed(
        state.db, job.id, 0, upto=None, limit=EVENTS_SHOWN, primary=False
    )
    timeline = [json.loads(event_model.render(r)) for r in rows]
    graph = {
        "nodes": [
            {
                "id": t.name,
                "status": t.status.value,
                "task_id": t.id,
                "href": f"/ui/jobs/{job.id}/tasks/{t.id}",
            }
            for t in job.tasks
        ],
        "edges": [[d, t.name] for t in job.tasks for d in t.depends_on],
    }
    failed = any(t.status.value != "succeeded" for t in job.tasks)
    return {
        "job": job,
        "events": timeline,
        "graph": graph,
        "finished": job.status.terminal,
        "rerun_failed": job.status.terminal and failed,
    }


@signed_in
async def job_page(request: Request) -> Response:
    return render(request, "job.html", await _job_context(request))


@signed_in
async def job_live(request: Request) -> Response:
    """The parts of a job page that change as it runs (swapped in on its events)."""
    return render(request, "job_live.html", await _job_context(request))


@signed_in
async def task_page(request: Request) -> Response:
    task = await read(request, jobs.get_task, TaskDetail)
    files = await read(request, artifacts.list_artifacts, ArtifactList)
    template = "task_panel.html" if request.headers.get("hx-request") == "true" else "task.html"
    return render(request, template, {"task": task, "job_id": task.job_id, "files": files})


@signed_in
async def artifact_download(request: Request) -> Response:
    """One artifact, as GET /v1/.../artifacts/{path} streams it (Range included): the
    session's cookie reaches only /ui/, so the dashboard hands the API's answer on."""
    return await call(request, artifacts.get_artifact)


# The query parameters of a map task's instances page, handed to the API as they are.
INSTANCE_FILTERS = ("status", "cursor", "limit")


@signed_in
async def instances_page(request: Request) -> Response:
    """A map task's instances, a page at a time (the job's page shows only their counts)."""
    query = [(k, v) for k, v in request.query_params.multi_items() if k in INSTANCE_FILTERS and v]
    task = await read(request, jobs.get_task, TaskDetail)
    page = await read(request, instances.list_instances, InstancePage, query=query)
    paging = [(k, v) for k, v in query if k != "cursor"]
    return render(
        request,
        "instances.html",
        {
            "task": task,
            "job_id": task.job_id,
            "page": page,
            "statuses": [s.value for s in TaskStatus],
            "chosen": request.query_params.getlist("status"),
            "next_query": urlencode([*paging, ("cursor", page.next_cursor)])
            if page.next_cursor
            else None,
        },
    )


@signed_in
async def task_types_page(request: Request) -> Response:
    types = await read(request, task_types.list_task_types, TaskTypeList)
    return render(request, "task_types.html", {"task_types": types.task_types})


@signed_in
async def system_page(request: Request) -> Response:
    state = get_state(request)
    principal = request.state.token
    depth: dict[str, int] | None
    try:
        depth = await queue.depth(state.queue_redis)
    except (RedisError, OSError):
        depth = None  # shown as unavailable; the page itself must not fail with Redis
    leases = await runners.alive(state.reads, principal.id, admin=principal.is_admin)
    by_runner: dict[str, list[Any]] = {}
    for row in leases:
        by_runner.setdefault(str(row["runner_id"]), []).append(row)
    failures = await read(
        request,
        jobs.list_jobs,
        JobPage,
        query=[("status", "failed"), ("limit", str(RECENT_FAILURES))],
    )
    return render(
        request,
        "system.html",
        {
            "replica": state.db.replica_state(),
            "depth": depth,
            "runners": by_runner,
            "failures": failures.jobs,
        },
    )


_JOB = "/jobs/{job_id:uuid}"
routes: Iterable[BaseRoute] = [
    Route("/", home, methods=["GET"]),
    Route("/jobs", jobs_page, methods=["GET"]),
    Route("/jobs/rows", job_rows, methods=["GET"]),
    Route(_JOB, job_page, methods=["GET"]),
    Route(f"{_JOB}/live", job_live, methods=["GET"]),
    Route(f"{_JOB}/tasks/{{task_id:uuid}}", task_page, methods=["GET"]),
    Route(f"{_JOB}/tasks/{{task_id:uuid}}/instances", instances_page, methods=["GET"]),
    Route(
        f"{_JOB}/tasks/{{task_id:uuid}}/artifacts/{{path:path}}",
        artifact_download,
        methods=["GET"],
    ),
    Route("/task-types", task_types_page, methods=["GET"]),
    Route("/system", system_page, methods=["GET"]),
]
