"""/v1/task-types: what can be submitted, with each type's payload schema."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.auth import require_token
from core.state import get_state

__all__ = ["routes"]


async def list_task_types(request: Request) -> Response:
    await require_token(request)
    task_types = get_state(request).task_types
    return JSONResponse(
        {
            "task_types": [
                {
                    "name": tt.name,
                    "description": tt.description,
                    "payload_schema": dict(tt.payload_schema),
                }
                for tt in (task_types[name] for name in sorted(task_types))
            ]
        }
    )


routes: Iterable[BaseRoute] = [
    Route("/v1/task-types", list_task_types, methods=["GET"], name="list_task_types"),
]
