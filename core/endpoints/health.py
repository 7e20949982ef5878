"""Liveness, readiness, metrics and the OpenAPI document: the unauthenticated operator surface."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core import metrics
from core.errors import error_body
from core.state import get_state

__all__ = ["routes"]

PROBE_TIMEOUT_SECONDS = 2.0


async def healthz(request: Request) -> Response:
    # Alive means the event loop answers; dependencies are /readyz's business.
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when the primary answers; the replica and the queue Redis are reported only,
    since reads fall back to the primary and jobs are accepted without the queue."""
    state = get_state(request)
    primary: dict[str, Any] = {"up": True}
    try:
        await asyncio.wait_for(state.db.primary.fetch_val("SELECT 1"), PROBE_TIMEOUT_SECONDS)
    except Exception as exc:
        primary = {"up": False, "error": f"{type(exc).__name__}: {exc}"}
    queue_redis: dict[str, Any] = {"up": True}
    try:
        await asyncio.wait_for(state.queue_redis.ping(), PROBE_TIMEOUT_SECONDS)
    except (RedisError, OSError, TimeoutError) as exc:
        queue_redis = {"up": False, "error": f"{type(exc).__name__}: {exc}"}
    body: dict[str, Any] = {
        "status": "ready" if primary["up"] else "unavailable",
        "primary": primary,
        "replica": state.db.replica_state(),
        "queue_redis": queue_redis,
    }
    if not primary["up"]:
        body.update(error_body("unavailable", "the primary database does not answer"))
        return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})
    return JSONResponse(body)


async def metrics_endpoint(request: Request) -> Response:
    db = get_state(request).db
    metrics.REPLICA_UP.set(1 if db.replica is not None and db.replica_up else 0)
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    return JSONResponse(get_state(request).openapi)


routes: Iterable[BaseRoute] = [
    Route("/healthz", healthz, methods=["GET"], name="healthz"),
    Route("/readyz", readyz, methods=["GET"], name="readyz"),
    Route("/metrics", metrics_endpoint, methods=["GET"], name="metrics"),
    Route("/openapi.json", openapi, methods=["GET"], name="openapi"),
]
