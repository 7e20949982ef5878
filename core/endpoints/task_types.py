"""/v1/task-types: what can be submitted, with each type's payload schema."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core.auth import require_token
from core.openapi import Document
from core.responses import ModelResponse
from core.state import get_state
from wire import TaskTypeInfo, TaskTypeList

__all__ = ["openapi_paths", "routes"]


async def list_task_types(request: Request) -> Response:
    await require_token(request)
    task_types = get_state(request).task_types
    return ModelResponse(
        TaskTypeList(
            task_types=[
                TaskTypeInfo(
                    name=tt.name,
                    description=tt.description,
                    payload_schema=dict(tt.payload_schema),
                )
                for tt in (task_types[name] for name in sorted(task_types))
            ]
        )
    )


routes: Iterable[BaseRoute] = [
    Route("/v1/task-types", list_task_types, methods=["GET"], name="list_task_types"),
]


def openapi_paths(doc: Document) -> dict[str, Any]:
    return {
        "/v1/task-types": {
            "get": {
                "operationId": "listTaskTypes",
                "summary": "Registered task types and their payload schemas",
                "security": [{"bearer": []}],
                "responses": {"200": doc.ok("Task types.", TaskTypeList), **doc.authed()},
            }
        },
    }
