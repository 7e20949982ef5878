"""The API as a Starlette application.

Routes come from the modules in ``ROUTE_MODULES``: each exposes ``routes`` (a list of
Starlette routes) and ``openapi_paths(doc)``, its operations for ``/openapi.json`` (see
``core.openapi``). Adding a group of endpoints is one line here. Endpoints authenticate
with ``core.auth.require_token``, raise ``core.errors.ApiError`` for any 4xx/5xx, read
through ``state.reads`` (``core.consistency``) and reach shared objects with
``core.state.get_state(request)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType
from typing import Any

import pluggy
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core import metrics
from core.consistency import Reads
from core.db import Databases
from core.endpoints import artifacts, events, health, jobs, schedules, secrets, task_types
from core.endpoints import instances as map_instances
from core.errors import (
    UNAVAILABLE_ERRORS,
    ApiError,
    api_error_handler,
    http_exception_handler,
    internal_error_handler,
    unavailable_handler,
)
from core.feeds import streams_client
from core.limits import BodyLimitMiddleware, RateLimiter, SourceFailures
from core.livestreams import LiveStreams
from core.openapi import build_openapi
from core.readiness import ReadinessProbe
from core.sealing import Keyring
from core.settings import Settings
from core.state import AppState
from core.tokens import AdminTokenRefused, ensure_admin_token
from core.ui import mount as dashboard
from core.validation import JobValidator
from plugins.manager import collect_task_types, make_plugin_manager

__all__ = ["ROUTE_MODULES", "create_app"]

log = logging.getLogger(__name__)

ROUTE_MODULES: Sequence[ModuleType] = (
    *(health, jobs, schedules, task_types, events, secrets),
    map_instances,
    artifacts,
)

# A dead queue Redis must cost a request milliseconds, not the default minutes.
REDIS_TIMEOUT_SECONDS = 0.5


def _version() -> str:
    try:
        return version("homerun")
    except PackageNotFoundError:
        return "0.0.0"


class RequestMetricsMiddleware:
    """Counts every answer by route template (not raw path: ids would explode the series)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path_format", None) or "unmatched"
            method = scope["method"]
            metrics.HTTP_REQUESTS.labels(method, template, str(status)).inc()
            metrics.HTTP_REQUEST_SECONDS.labels(method, template).observe(
                time.perf_counter() - started
            )


def _routes(modules: Iterable[ModuleType]) -> list[BaseRoute]:
    return [route for module in modules for route in module.routes]


def create_app(
    settings: Settings,
    *,
    plugin_manager: pluggy.PluginManager | None = None,
    route_modules: Sequence[ModuleType] = ROUTE_MODULES,
) -> Starlette:
    """Build the API. Connections open in the lifespan; migrations are ``core.server``'s job."""
    pm = plugin_manager or make_plugin_manager(disabled=settings.disabled_plugins)
    registry = collect_task_types(pm)
    validator = JobValidator(registry, settings)
    # A malformed keyring stops the start-up here, with the line at fault named.
    keyring = Keyring.parse(settings.secrets_keyring) if settings.secrets_keyring else None
    spec = build_openapi(
        validator.schemas,
        registry,
        route_modules,
        max_body_bytes=settings.max_body_bytes,
        version=_version(),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = Databases(
            settings.database_url,
            settings.database_replica_url,
            probe_seconds=settings.replica_probe_seconds,
            on_fallback=lambda reason: metrics.REPLICA_FALLBACKS.labels(reason).inc(),
            on_read=lambda target: metrics.DB_READS.labels(target).inc(),
        )
        queue_redis = aioredis.Redis.from_url(
            settings.queue_redis_url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )
        events_redis = streams_client(
            settings.events_redis_url,
            block_seconds=settings.sse_heartbeat_seconds,
            max_streams=settings.sse_streams_per_process,
        )
        live_streams = LiveStreams(
            per_token=settings.sse_streams_per_token,
            per_process=settings.sse_streams_per_process,
            retry_after_seconds=settings.sse_retry_after_seconds,
        )
        watcher: asyncio.Task[None] | None = None
        await db.connect()
        try:
            state = AppState(
                settings=settings,
                db=db,
                queue_redis=queue_redis,
                reads=Reads(db, queue_redis, window_seconds=settings.read_your_writes_seconds),
                rate_limiter=RateLimiter(
                    queue_redis,
                    per_second=settings.rate_limit_per_second,
                    burst=settings.rate_limit_burst,
                ),
                source_failures=SourceFailures(
                    per_second=settings.auth_failures_per_second,
                    burst=settings.auth_failure_burst,
                ),
                task_types=registry,
                validator=validator,
                live_streams=live_streams,
                readiness=ReadinessProbe(db, queue_redis),
                openapi=spec,
                events_redis=events_redis,
                keyring=keyring,
            )
            if settings.admin_token:
                try:
                    state.admin_token_id = await ensure_admin_token(
                        db.primary, settings.admin_token
                    )
                except AdminTokenRefused as exc:
                    # Serve the other tokens: one unusable secret must not become an outage.
                    log.error("starting without an admin token: %s", exc)
            app.state.homerun = state
            watcher = asyncio.create_task(
                live_streams.watch_revocations(db.primary, settings.sse_revocation_check_seconds)
            )
            log.info("API ready: %d task types, replica %s", len(registry), db.replica_state())
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            await db.disconnect()
            await queue_redis.aclose()
            await events_redis.aclose()

    handlers: dict[Any, Any] = {
        ApiError: api_error_handler,
        HTTPException: http_exception_handler,
        Exception: internal_error_handler,
        **{error: unavailable_handler for error in UNAVAILABLE_ERRORS},
    }
    return Starlette(
        # The dashboard (core/ui/) under /ui, beside the API it reads through.
        routes=[*_routes(route_modules), dashboard(settings)],
        middleware=[
            Middleware(RequestMetricsMiddleware),
            Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes),
        ],
        exception_handlers=handlers,
        lifespan=lifespan,
    )
