"""The JSON error shape for every failure, and the streaming body limit, on tiny apps."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.errors import (
    ApiError,
    Detail,
    api_error_handler,
    http_exception_handler,
    internal_error_handler,
)
from core.limits import DRAIN_MAX_BYTES, BodyLimitMiddleware

LIMIT = 1000
READ: list[int] = []


async def echo_size(request: Request) -> Response:
    body = await request.body()
    READ.append(len(body))
    return JSONResponse({"size": len(body)})


async def refuse(request: Request) -> Response:
    raise ApiError(418, "teapot", "no coffee", [Detail(["query", "cup"], "is a teapot")])


async def crash(request: Request) -> Response:
    raise RuntimeError("secret internals")


def make_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/size", echo_size, methods=["POST"]),
            Route("/refuse", refuse),
            Route("/crash", crash),
        ],
        middleware=[Middleware(BodyLimitMiddleware, max_bytes=LIMIT)],
        exception_handlers={
            ApiError: api_error_handler,
            HTTPException: http_exception_handler,
            Exception: internal_error_handler,
        },
    )


def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=make_app(), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_error_shapes() -> None:
    async with client() as c:
        refused = await c.get("/refuse")
        assert refused.status_code == 418
        assert refused.json() == {
            "error": {
                "code": "teapot",
                "message": "no coffee",
                "details": [{"loc": ["query", "cup"], "msg": "is a teapot"}],
            }
        }
        missing = await c.get("/nowhere")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        wrong = await c.delete("/refuse")
        assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
        assert "GET" in wrong.headers["allow"]
        crashed = await c.get("/crash")
        assert crashed.status_code == 500
        assert crashed.json()["error"] == {
            "code": "internal_error",
            "message": "internal server error",
            "details": [],
        }
        assert "secret" not in crashed.text


async def test_body_limit_by_declared_length_and_while_streaming() -> None:
    READ.clear()
    async with client() as c:
        assert (await c.post("/size", content=b"x" * LIMIT)).json() == {"size": LIMIT}
        declared = await c.post("/size", content=b"x" * (LIMIT + 1))
        assert declared.status_code == 413 and declared.json()["error"]["code"] == "body_too_large"

        sent = 0

        async def chunks() -> AsyncIterator[bytes]:
            nonlocal sent
            for _ in range(100):  # 10x the limit, with no Content-Length
                sent += 100
                yield b"x" * 100

        streamed = await c.post("/size", content=chunks())
        assert streamed.status_code == 413
        # The rest was read and dropped, so that a real client can read the 413.
        assert sent == 100 * 100

        sent = 0
        piece = b"x" * 65536

        async def endless() -> AsyncIterator[bytes]:
            nonlocal sent
            while sent < 4 * DRAIN_MAX_BYTES:
                sent += len(piece)
                yield piece

        drained = await c.post("/size", content=endless())
        assert drained.status_code == 413
        assert sent <= DRAIN_MAX_BYTES + 2 * len(piece)  # the drain stopped at its bound
    assert READ == [LIMIT]  # the endpoint never got an oversized body
