"""/v1/jobs: submit, list, read, cancel, keep (PATCH)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core import handoff, metrics, reruns, transitions, views
from core.auth import require_token
from core.cursor import decode_cursor, encode_cursor
from core.endpoints import secrets as secret_names
from core.errors import ApiError, Detail
from core.models import TERMINAL_JOB, JobStatus
from core.openapi import Document
from core.responses import ModelResponse
from core.state import AppState, get_state
from core.store import jobs as job_store
from core.validation import parse_json, refuse_closed_egress, request_hash
from wire import AttemptDetail, Job, JobPage, TaskDetail

__all__ = ["openapi_paths", "routes"]

log = logging.getLogger(__name__)

DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_IDEMPOTENCY_KEY = 255
MAX_ATTEMPT_NUMBER = 2**31 - 1  # attempts.number is a Postgres integer
MAX_NAME_FILTER = 200


def _not_found(job_id: uuid.UUID, task_id: uuid.UUID | None = None) -> ApiError:
    if task_id is None:
        return ApiError(
            404, "not_found", f"no job {job_id}", [Detail(["path", "job_id"], "no such job")]
        )
    return ApiError(
        404,
        "not_found",
        f"no task {task_id} in job {job_id}",
        [Detail(["path", "task_id"], "no such task")],
    )


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isprintable() or not key.isascii():
        raise ApiError(
            400,
            "bad_request",
            "Idempotency-Key must be 1-255 printable ASCII characters",
            [Detail(["header", "Idempotency-Key"], "1-255 printable ASCII characters")],
        )
    return key


def _require_json(request: Request) -> None:
    content_type = request.headers.get("content-type")
    if content_type is None:
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"request body must be application/json, not {media or 'empty'}",
            [Detail(["header", "Content-Type"], "expected application/json")],
        )


async def _enqueue(state: AppState, ready: list[transitions.ReadyTask]) -> None:
    await handoff.enqueue(state.queue_redis, ready)


async def create_job(request: Request) -> Response:
    principal = await require_token(request)
    state = get_state(request)
    key = _idempotency_key(request)
    _require_json(request)
    body = parse_json(await request.body())
    job = state.validator.validate(body)
    await secret_names.require_known(state, principal.id, job)
    refuse_closed_egress(job, principal.egress_allow)
    try:
        created = await transitions.create_job(
            state.db.primary,
            job,
            token_id=principal.id,
            idempotency_key=key,
            request_hash=request_hash(body) if key is not None else None,
        )
    except transitions.IdempotencyConflict as exc:
        raise ApiError(
            409,
            "idempotency_conflict",
            f"Idempotency-Key was already used for job {exc.job_id} with a different body",
            [Detail(["header", "Idempotency-Key"], "reused with a different request body")],
        ) from None
    if created.created:
        metrics.JOBS_SUBMITTED.inc()
        await _enqueue(state, created.ready)
        await state.reads.note_write(principal.id)
    view = await views.load_job(state.reads, principal.id, created.job_id, primary=True)
    assert view is not None  # just committed on the primary
    return ModelResponse(view, status_code=201 if created.created else 200)


def _query_error(name: str, msg: str) -> ApiError:
    return ApiError(
        400, "invalid_query", f"query parameter {name}: {msg}", [Detail(["query", name], msg)]
    )


def _id_query(raw: str | None, name: str, what: str) -> str | None:
    """A query parameter holding an id (normalised), or the 400 that says it is not one."""
    if raw is None:
        return None
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise _query_error(name, f"not a {what} id: {raw[:100]!r}") from None


async def list_jobs(request: Request) -> Response:
    principal = await require_token(request)
    state = get_state(request)
    params = request.query_params
    statuses = params.getlist("status")
    for status in statuses:
        if status not in {s.value for s in JobStatus}:
            known = ", ".join(s.value for s in JobStatus)
            raise _query_error("status", f"unknown status {status!r} (one of {known})")
    labels: dict[str, str] = {}
    for label in params.getlist("label"):
        name, sep, value = label.partition(":")
        if not sep or not name:
            raise _query_error("label", f"expected key:value, got {label!r}")
        if "\x00" in label:
            raise _query_error("label", "contains a NUL character (\\u0000)")
        if labels.get(name, value) != value:
            raise _query_error("label", f"label {name!r} filtered by two different values")
        labels[name] = value
    raw_limit = params.get("limit")
    limit = DEFAULT_PAGE
    if raw_limit is not None:
        try:
            limit = int(raw_limit)
        except ValueError:
            raise _query_error("limit", f"not an integer: {raw_limit!r}") from None
        if not 1 <= limit <= MAX_PAGE:
            raise _query_error("limit", f"must be between 1 and {MAX_PAGE}, got {limit}")
    rerun_of = _id_query(params.get("rerun_of"), "rerun_of", "job")
    schedule = _id_query(params.get("schedule"), "schedule", "schedule")
    name_filter = params.get("name") or None
    if name_filter is not None and (len(name_filter) > MAX_NAME_FILTER or "\x00" in name_filter):
        raise _query_error("name", f"at most {MAX_NAME_FILTER} characters, no NUL")
    after = None
    cursor = params.get("cursor")
    if cursor is not None:
        try:
            after = decode_cursor(cursor)
        except ValueError as exc:
            raise ApiError(
                400, "bad_cursor", f"invalid cursor: {exc}", [Detail(["query", "cursor"], str(exc))]
            ) from None
    jobs, last = await views.list_jobs(
        state.reads,
        principal.id,
        statuses=statuses,
        labels=labels,
        rerun_of=rerun_of,
        schedule_id=schedule,
        name=name_filter,
        limit=limit,
        after=after,
    )
    return ModelResponse(
        JobPage(jobs=jobs, next_cursor=encode_cursor(*last) if last is not None else None)
    )


async def get_job(request: Request) -> Response:
    principal = await require_token(request)
    job_id: uuid.UUID = request.path_params["job_id"]
    view = await views.load_job(get_state(request).reads, principal.id, str(job_id))
    if view is None:
        raise _not_found(job_id)
    return ModelResponse(view)


def _patch_body(body: Any) -> bool:
    """The ``keep`` a PATCH body sets; 422 naming the field otherwise."""
    if not isinstance(body, dict):
        raise ApiError(
            422, "validation_error", "body: must be an object", [Detail(["body"], "not an object")]
        )
    for name in body:
        if name != "keep":
            msg = "unknown field (the only one that may change is keep)"
            raise ApiError(
                422, "validation_error", f"body.{name}: {msg}", [Detail(["body", name], msg)]
            )
    if not isinstance(body.get("keep"), bool):
        msg = "required, true or false"
        raise ApiError(
            422, "validation_error", f"body.keep: {msg}", [Detail(["body", "keep"], msg)]
        )
    return bool(body["keep"])


async def patch_job(request: Request) -> Response:
    principal = await require_token(request)
    state = get_state(request)
    job_id: uuid.UUID = request.path_params["job_id"]
    _require_json(request)
    keep = _patch_body(parse_json(await request.body()))
    if not await job_store.set_keep(state.db.primary, principal.id, str(job_id), keep):
        raise _not_found(job_id)
    await state.reads.note_write(principal.id)
    view = await views.load_job(state.reads, principal.id, str(job_id), primary=True)
    if view is None:  # {"keep": false} let it expire, and retention deleted it since
        raise _not_found(job_id)
    return ModelResponse(view)


async def job(request: Request) -> Response:
    return await (patch_job if request.method == "PATCH" else get_job)(request)


async def get_task(request: Request) -> Response:
    principal = await require_token(request)
    job_id: uuid.UUID = request.path_params["job_id"]
    task_id: uuid.UUID = request.path_params["task_id"]
    view = await views.load_task(get_state(request).reads, principal.id, str(job_id), str(task_id))
    if view is None:
        raise _not_found(job_id, task_id)
    return ModelResponse(view)


async def rerun_job(request: Request) -> Response:
    principal = await require_token(request)
    state = get_state(request)
    job_id: uuid.UUID = request.path_params["job_id"]
    start = request.query_params.get("from")
    if start not in (None, "failed"):
        raise _query_error("from", "the only value is 'failed' (leave it out to re-run all)")
    from_failed = start == "failed"
    original = await reruns.load(state.db.primary, principal.id, str(job_id))
    if original is None:
        raise _not_found(job_id)
    if from_failed and original.status.value not in TERMINAL_JOB:
        raise ApiError(
            409,
            "job_unfinished",
            f"job {job_id} is still {original.status.value}: a re-run from its failed tasks"
            " needs it finished (cancel it first, or re-run all of it)",
            [Detail(["query", "from"], "the job has not finished")],
        )
    # Validated as any new job is: the task types or the limits may have changed since.
    job = state.validator.validate(reruns.body_of(original))
    await secret_names.require_known(state, principal.id, job)
    refuse_closed_egress(job, principal.egress_allow)
    try:
        rerun = reruns.plan(original, job, from_failed=from_failed)
    except reruns.NothingToRerun as exc:
        raise ApiError(
            409, "nothing_to_rerun", str(exc), [Detail(["query", "from"], "nothing failed")]
        ) from None
    except reruns.OutputTooDeep as exc:
        raise ApiError(
            409,
            "output_too_deep",
            str(exc),
            [Detail(["query", "from"], "an output to take over is too deep to read")],
        ) from None
    try:
        created = await transitions.create_job(state.db.primary, rerun, token_id=principal.id)
    except asyncpg.ForeignKeyViolationError:
        # Retention deleted the original (or a task it hands over) since it was read.
        raise _not_found(job_id) from None
    metrics.JOBS_SUBMITTED.inc()
    await _enqueue(state, created.ready)
    await state.reads.note_write(principal.id)
    view = await views.load_job(state.reads, principal.id, created.job_id, primary=True)
    assert view is not None  # just committed on the primary
    return ModelResponse(view, status_code=201)


async def get_attempt(request: Request) -> Response:
    principal = await require_token(request)
    job_id: uuid.UUID = request.path_params["job_id"]
    task_id: uuid.UUID = request.path_params["task_id"]
    number: int = request.path_params["number"]
    view = None
    if 1 <= number <= MAX_ATTEMPT_NUMBER:  # beyond it Postgres could not even be asked
        view = await views.load_attempt(
            get_state(request).reads, principal.id, str(job_id), str(task_id), number
        )
    if view is None:
        raise ApiError(
            404,
            "not_found",
            f"no attempt {number} of task {task_id} in job {job_id}",
            [Detail(["path", "number"], "no such attempt")],
        )
    return ModelResponse(view)


async def cancel_job(request: Request) -> Response:
    principal = await require_token(request)
    state = get_state(request)
    job_id = str(request.path_params["job_id"])
    owned = await state.db.primary.fetch_val(
        "SELECT 1 FROM jobs WHERE id = :id AND token_id = :token",
        {"id": job_id, "token": principal.id},
    )
    if owned is None:
        raise _not_found(request.path_params["job_id"])
    after = await transitions.cancel_job(state.db.primary, job_id)
    await handoff.signal_cancels(state.queue_redis, after.cancel_running)
    await state.reads.note_write(principal.id)
    view = await views.load_job(state.reads, principal.id, job_id, primary=True)
    if view is None:  # finished, and deleted by retention since it was found
        raise _not_found(request.path_params["job_id"])
    return ModelResponse(view, status_code=202)


async def jobs(request: Request) -> Response:
    # One route for the collection, so a wrong method gets a 405 that lists both.
    return await (create_job if request.method == "POST" else list_jobs)(request)


routes: Iterable[BaseRoute] = [
    Route("/v1/jobs", jobs, methods=["GET", "POST"], name="jobs"),
    Route("/v1/jobs/{job_id:uuid}", job, methods=["GET", "PATCH"], name="get_job"),
    Route(
        "/v1/jobs/{job_id:uuid}/tasks/{task_id:uuid}", get_task, methods=["GET"], name="get_task"
    ),
    Route(
        "/v1/jobs/{job_id:uuid}/tasks/{task_id:uuid}/attempts/{number:int}",
        get_attempt,
        methods=["GET"],
        name="get_attempt",
    ),
    Route("/v1/jobs/{job_id:uuid}/cancel", cancel_job, methods=["POST"], name="cancel_job"),
    Route("/v1/jobs/{job_id:uuid}/rerun", rerun_job, methods=["POST"], name="rerun_job"),
]


def openapi_paths(doc: Document) -> dict[str, Any]:
    job_id, task_id = doc.path_id("job_id"), doc.path_id("task_id")
    return {
        "/v1/jobs": {
            "post": {
                "operationId": "createJob",
                "summary": "Submit a job",
                "security": [{"bearer": []}],
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_IDEMPOTENCY_KEY,
                            "pattern": "^[\\x20-\\x7e]+$",
                        },
                        "description": "Same key and body: the same job again (200). Same key,"
                        " other body: 409.",
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": doc.submission(),
                            # For people reading the document, and the contract test's
                            # explicit case: a job every deployment accepts.
                            "example": {
                                "name": "hello",
                                "tasks": [
                                    {
                                        "name": "greet",
                                        "type": "shell",
                                        "payload": {"script": "echo hello"},
                                    }
                                ],
                            },
                        }
                    },
                },
                "responses": {
                    "201": doc.ok("Accepted; the job and its tasks.", Job),
                    "200": doc.ok("Idempotent replay: the job this key created.", Job),
                    "400": doc.error("Body is not JSON, or a malformed Idempotency-Key."),
                    **doc.authed(),
                    "409": doc.error("Idempotency-Key reused with a different body."),
                    "413": doc.too_large(),
                    "415": doc.error("Content-Type is not application/json."),
                    "422": doc.error(
                        "The job is invalid: each detail names a field (unknown task type,"
                        " payload off its schema, dependency cycle, ...). Nothing was written."
                    ),
                },
            },
            "get": {
                "operationId": "listJobs",
                "summary": "List the token's jobs, newest first",
                "security": [{"bearer": []}],
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {
                            "type": "array",
                            "items": {"enum": [s.value for s in JobStatus]},
                        },
                        "style": "form",
                        "explode": True,
                        "description": "Repeat for any of several statuses.",
                    },
                    {
                        "name": "label",
                        "in": "query",
                        "schema": {
                            "type": "array",
                            "items": {"type": "string", "pattern": "^[^:]+:"},
                        },
                        "style": "form",
                        "explode": True,
                        "description": "key:value; repeat to require several labels.",
                    },
                    {
                        "name": "rerun_of",
                        "in": "query",
                        "schema": {"type": "string", "format": "uuid"},
                        "description": "Only the re-runs of this job.",
                    },
                    {
                        "name": "schedule",
                        "in": "query",
                        "schema": {"type": "string", "format": "uuid"},
                        "description": "Only the jobs this schedule fired.",
                    },
                    {
                        "name": "name",
                        "in": "query",
                        "schema": {"type": "string", "maxLength": MAX_NAME_FILTER},
                        "description": "Only jobs whose name contains this (any case).",
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_PAGE,
                            "default": DEFAULT_PAGE,
                        },
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "next_cursor of the previous page.",
                    },
                ],
                "responses": {
                    "200": doc.ok("A page of jobs.", JobPage),
                    "400": doc.error("A malformed filter, limit or cursor."),
                    **doc.authed(),
                },
            },
        },
        "/v1/jobs/{job_id}": {
            "get": {
                "operationId": "getJob",
                "summary": "A job with its tasks",
                "security": [{"bearer": []}],
                "parameters": [job_id],
                "responses": {
                    "200": doc.ok("The job.", Job),
                    **doc.authed(),
                    "404": doc.error("No such job for this token."),
                },
            },
            "patch": {
                "operationId": "patchJob",
                "summary": "Keep a job from retention, or let it expire again",
                "security": [{"bearer": []}],
                "parameters": [job_id],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["keep"],
                                "properties": {
                                    "keep": {
                                        "type": "boolean",
                                        "description": "true: never deleted by retention.",
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": doc.ok("The job, changed.", Job),
                    "400": doc.error("Body is not JSON."),
                    **doc.authed(),
                    "404": doc.error("No such job for this token (or retention deleted it)."),
                    "413": doc.too_large(),
                    "415": doc.error("Content-Type is not application/json."),
                    "422": doc.error('The body is not {"keep": true|false}.'),
                },
            },
        },
        "/v1/jobs/{job_id}/tasks/{task_id}": {
            "get": {
                "operationId": "getTask",
                "summary": "A task with its whole output, its attempts and its latest result",
                "security": [{"bearer": []}],
                "parameters": [job_id, task_id],
                "responses": {
                    "200": doc.ok("The task.", TaskDetail),
                    **doc.authed(),
                    "404": doc.error("No such job or task for this token."),
                },
            }
        },
        "/v1/jobs/{job_id}/tasks/{task_id}/attempts/{number}": {
            "get": {
                "operationId": "getAttempt",
                "summary": "One attempt of a task with its result (stdout, stderr, output)",
                "security": [{"bearer": []}],
                "parameters": [
                    job_id,
                    task_id,
                    {
                        "name": "number",
                        "in": "path",
                        "required": True,
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_ATTEMPT_NUMBER,
                        },
                    },
                ],
                "responses": {
                    "200": doc.ok("The attempt.", AttemptDetail),
                    **doc.authed(),
                    "404": doc.error("No such job, task or attempt for this token."),
                },
            }
        },
        "/v1/jobs/{job_id}/rerun": {
            "post": {
                "operationId": "rerunJob",
                "summary": "A new job from this one's body (rerun_of links them)",
                "security": [{"bearer": []}],
                "parameters": [
                    job_id,
                    {
                        "name": "from",
                        "in": "query",
                        "required": False,
                        "schema": {"enum": ["failed"]},
                        "description": "failed: run only the tasks that did not succeed and"
                        " their dependents; the succeeded ones are taken over with their"
                        " outputs (reused_from).",
                    },
                ],
                "responses": {
                    "201": doc.ok("The new job.", Job),
                    "400": doc.error("A from= other than failed."),
                    **doc.authed(),
                    "404": doc.error("No such job for this token."),
                    "409": doc.error(
                        "from=failed on a job that has not finished, whose every task"
                        " succeeded, or that would take over an output stored too deep to read."
                    ),
                    "413": doc.too_large(),
                    "422": doc.error(
                        "The original no longer validates (a task type is gone,"
                        " or a limit changed)."
                    ),
                },
            }
        },
        "/v1/jobs/{job_id}/cancel": {
            "post": {
                "operationId": "cancelJob",
                "summary": "Cancel a job (idempotent; a finished job stays as it is)",
                "security": [{"bearer": []}],
                "parameters": [job_id],
                "responses": {
                    "202": doc.ok("Cancellation recorded; running tasks are being stopped.", Job),
                    **doc.authed(),
                    "404": doc.error("No such job for this token."),
                    "413": doc.too_large(),
                },
            }
        },
    }
