"""/v1/jobs/{id}/tasks/{task}/instances: a map task's instances, a page at a time."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core import instances
from core.auth import require_token
from core.errors import ApiError, Detail
from core.models import TaskStatus
from core.openapi import Document
from core.responses import ModelResponse
from core.state import get_state
from wire import InstancePage

__all__ = ["openapi_paths", "routes"]

DEFAULT_PAGE = 100
MAX_PAGE = 1000


def _query_error(name: str, msg: str) -> ApiError:
    return ApiError(
        400, "invalid_query", f"query parameter {name}: {msg}", [Detail(["query", name], msg)]
    )


async def list_instances(request: Request) -> Response:
    principal = await require_token(request)
    job_id: uuid.UUID = request.path_params["job_id"]
    task_id: uuid.UUID = request.path_params["task_id"]
    params = request.query_params
    statuses = params.getlist("status")
    for status in statuses:
        if status not in {s.value for s in TaskStatus}:
            known = ", ".join(s.value for s in TaskStatus)
            raise _query_error("status", f"unknown status {status!r} (one of {known})")
    limit = DEFAULT_PAGE
    raw_limit = params.get("limit")
    if raw_limit is not None:
        try:
            limit = int(raw_limit)
        except ValueError:
            raise _query_error("limit", f"not an integer: {raw_limit!r}") from None
        if not 1 <= limit <= MAX_PAGE:
            raise _query_error("limit", f"must be between 1 and {MAX_PAGE}, got {limit}")
    after = None
    cursor = params.get("cursor")
    if cursor is not None:
        try:
            after = instances.decode_cursor(cursor)
        except ValueError as exc:
            raise ApiError(
                400, "bad_cursor", f"invalid cursor: {exc}", [Detail(["query", "cursor"], str(exc))]
            ) from None
    page = await instances.list_instances(
        get_state(request).reads,
        principal.id,
        str(job_id),
        str(task_id),
        statuses=statuses,
        limit=limit,
        after=after,
    )
    if page is None:
        raise ApiError(
            404,
            "not_found",
            f"no map task {task_id} in job {job_id}",
            [Detail(["path", "task_id"], "no such map task")],
        )
    return ModelResponse(page)


routes: Iterable[BaseRoute] = [
    Route(
        "/v1/jobs/{job_id:uuid}/tasks/{task_id:uuid}/instances",
        list_instances,
        methods=["GET"],
        name="list_instances",
    ),
]


def openapi_paths(doc: Document) -> dict[str, Any]:
    return {
        "/v1/jobs/{job_id}/tasks/{task_id}/instances": {
            "get": {
                "operationId": "listInstances",
                "summary": "A map task's instances, in item order",
                "description": "Each instance is a task of its own: GET"
                " /v1/jobs/{job_id}/tasks/{id} gives its attempts and whole output.",
                "security": [{"bearer": []}],
                "parameters": [
                    doc.path_id("job_id"),
                    doc.path_id("task_id"),
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {
                            "type": "array",
                            "items": {"enum": [s.value for s in TaskStatus]},
                        },
                        "style": "form",
                        "explode": True,
                        "description": "Repeat for any of several statuses.",
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
                    "200": doc.ok("A page of instances.", InstancePage),
                    "400": doc.error("A malformed status, limit or cursor."),
                    **doc.authed(),
                    "404": doc.error("No such job or map task for this token."),
                },
            }
        }
    }
