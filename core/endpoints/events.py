"""Server-Sent Events: ``GET /v1/jobs/{job_id}/events`` and ``GET /v1/events``.

The stream logic lives in ``core.feeds``; this module authenticates, checks ownership and
the ``Last-Event-ID``, answers 503 with ``Retry-After`` while the streams Redis is down,
and hands the stream to Starlette.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core.auth import require_token
from core.errors import ApiError, Detail
from core.feeds import BadCursor, Cursor, JobStream, TokenCursor, TokenStream
from core.openapi import Document
from core.state import AppState, get_state
from core.store import jobs as job_store

__all__ = ["openapi_paths", "routes"]

PING_TIMEOUT_SECONDS = 1.0
_HEADERS = {
    "Cache-Control": "no-cache",
    # Tell nginx-style proxies not to buffer the stream.
    "X-Accel-Buffering": "no",
}


_HEADER = ["header", "Last-Event-ID"]
_SINCE = ["query", "since"]


def _bad_cursor(exc: BadCursor, loc: list[str] = _HEADER) -> ApiError:
    detail = Detail(loc, "not an id this stream sent")
    return ApiError(400, "bad_request", str(exc), [detail])


async def _streams(state: AppState) -> aioredis.Redis:
    """The streams Redis, or 503: without it there is no live stream to offer."""
    streams = state.events_redis
    retry = {"Retry-After": str(state.settings.sse_retry_after_seconds)}
    if streams is None:
        raise ApiError(503, "unavailable", "live events are not configured", headers=retry)
    try:
        await asyncio.wait_for(streams.ping(), PING_TIMEOUT_SECONDS)
    except (RedisError, OSError, TimeoutError) as exc:
        raise ApiError(
            503,
            "unavailable",
            f"live events are unavailable right now ({type(exc).__name__}); reconnect with"
            " Last-Event-ID to resume",
            headers=retry,
        ) from None
    return streams


def _stream(state: AppState, token_id: str, frames: AsyncIterator[bytes]) -> Response:
    """The response of an admitted stream (429/503 when the token or process is full)."""
    slot = state.live_streams.admit(token_id)
    return state.live_streams.response(slot, frames, _HEADERS)


async def job_events(request: Request) -> Response:
    principal = await require_token(request)
    state = get_state(request)
    job_id: uuid.UUID = request.path_params["job_id"]
    if not await job_store.owned(state.reads, principal.id, str(job_id)):
        detail = Detail(["path", "job_id"], "no such job")
        raise ApiError(404, "not_found", f"no job {job_id}", [detail])
    try:
        cursor = Cursor.parse(request.headers.get("last-event-id"))
    except BadCursor as exc:
        raise _bad_cursor(exc) from None
    streams = await _streams(state)
    heartbeat = state.settings.sse_heartbeat_seconds
    stream = JobStream(state.db, streams, str(job_id), cursor, heartbeat_seconds=heartbeat)
    try:
        await stream.check()
    except BadCursor as exc:
        raise _bad_cursor(exc) from None
    return _stream(state, principal.id, stream.frames())


def _token_cursor(request: Request) -> tuple[TokenCursor | None, list[str]]:
    """The client's place in its token's feed (None: the present), and where it came from.

    ``Last-Event-ID`` wins over ``?since=``: a browser's EventSource reconnects to the same
    URL with the header, and must resume where it was, not where it first started.
    """
    given = [
        (request.headers.get("last-event-id"), _HEADER),
        (request.query_params.get("since"), _SINCE),
    ]
    for raw, loc in given:
        if raw is not None and raw.strip() != "":
            try:
                return TokenCursor.parse(raw), loc
            except BadCursor as exc:
                raise _bad_cursor(exc, loc) from None
    return None, _HEADER


async def token_events(request: Request) -> Response:
    principal = await require_token(request)
    state = get_state(request)
    cursor, loc = _token_cursor(request)
    streams = await _streams(state)
    heartbeat = state.settings.sse_heartbeat_seconds
    feed = TokenStream(state.db, streams, principal.id, cursor, heartbeat_seconds=heartbeat)
    try:
        await feed.check()
    except BadCursor as exc:
        raise _bad_cursor(exc, loc) from None
    return _stream(state, principal.id, feed.frames())


routes: Iterable[BaseRoute] = [
    Route("/v1/jobs/{job_id:uuid}/events", job_events, methods=["GET"], name="job_events"),
    Route("/v1/events", token_events, methods=["GET"], name="token_events"),
]


_LAST_EVENT_ID = {
    "name": "Last-Event-ID",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "The id of the last event received; the stream resumes right after it.",
}
_SSE = {
    "text/event-stream": {
        # Before OpenAPI 3.2 (and its itemSchema), a stream's schema describes each event.
        "schema": {
            "type": "object",
            "required": ["data"],
            "properties": {
                "id": {"type": "string"},
                "event": {"type": "string"},
                "data": {"type": "string", "contentMediaType": "application/json"},
                "retry": {"type": "integer"},
            },
        },
        "description": "Server-Sent Events; see docs/events.md for the event types and ids.",
    }
}


def openapi_paths(doc: Document) -> dict[str, Any]:
    common = {
        "400": doc.error("A Last-Event-ID (or since) this stream never sent."),
        **doc.authed("The streams Redis is unavailable; reconnect after Retry-After."),
    }
    return {
        "/v1/jobs/{job_id}/events": {
            "get": {
                "operationId": "jobEvents",
                "summary": "A job's events as Server-Sent Events: the whole story, then live",
                "description": "Status events (id = per-job seq) replayed from the start, then"
                " live, interleaved with task.log events; ends after the job's terminal event."
                " Comment lines are heartbeats.",
                "security": [{"bearer": []}],
                "parameters": [doc.path_id("job_id"), _LAST_EVENT_ID],
                "responses": {
                    "200": {"description": "The event stream.", "content": _SSE},
                    **common,
                    "404": doc.error("No such job for this token."),
                },
            }
        },
        "/v1/events": {
            "get": {
                "operationId": "tokenEvents",
                "summary": "Status events of all the token's jobs, live and resumable (dashboards)",
                "description": "Status events of every job of the token in token order (id ="
                " per-token seq, no gap, no duplicate, replayed from Postgres when needed)."
                " Starts after Last-Event-ID, else after `since`, else at the present; never"
                " ends. No task.log events. Comment lines are heartbeats.",
                "security": [{"bearer": []}],
                "parameters": [
                    _LAST_EVENT_ID,
                    {
                        "name": "since",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 0},
                        "description": "Start after this event id (0: the token's whole"
                        " history) when there is no Last-Event-ID.",
                    },
                ],
                "responses": {
                    "200": {"description": "The event stream.", "content": _SSE},
                    **common,
                },
            }
        },
    }
