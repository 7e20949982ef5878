"""Liveness, readiness, metrics and the OpenAPI document: the unauthenticated operator surface."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core import metrics
from core.openapi import RETRY_AFTER, Document
from core.responses import ModelResponse
from core.state import get_state
from wire import Health, Readiness

__all__ = ["openapi_paths", "routes"]


async def healthz(request: Request) -> Response:
    # Alive means the event loop answers; dependencies are /readyz's business.
    return ModelResponse(Health(status="ok"))


async def readyz(request: Request) -> Response:
    """Ready when the primary answers; the replica and the queue Redis are reported only,
    since reads fall back to the primary and jobs are accepted without the queue."""
    state = get_state(request)
    body = await state.readiness.get()
    if not body.primary.up:
        return ModelResponse(body, status_code=503, headers={"Retry-After": "1"})
    return ModelResponse(body)


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


def openapi_paths(doc: Document) -> dict[str, Any]:
    return {
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness",
                "security": [],
                "responses": {"200": doc.ok("Alive.", Health)},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: the primary answers; replica and queue Redis shown",
                "security": [],
                "responses": {
                    "200": doc.ok("Ready.", Readiness),
                    "503": {
                        **doc.ok("The primary does not answer.", Readiness),
                        "headers": RETRY_AFTER,
                    },
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": [],
                "responses": {"200": doc.ok("OpenAPI 3.1 document.", {"type": "object"})},
            }
        },
    }
