"""Request limits: the body-size cap, enforced while the body streams in, and the per-token
rate limit.

The rate limit is a token bucket kept in the queue Redis (``core.keys.rate_limit``), so it
holds across every API replica behind the load balancer, with Redis's clock as the one
clock all replicas share. When that Redis cannot be asked, requests are let through
(fail open) and counted: the limit protects capacity, and refusing all traffic because a
cache is down would turn a partial outage into a total one. A single Redis round trip (an
EVALSHA of the script below) per authenticated request is the cost.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core import keys, metrics
from core.errors import ApiError, error_response

__all__ = ["BodyLimitMiddleware", "BodyTooLarge", "RateLimiter", "Verdict"]

log = logging.getLogger(__name__)

# Before a 413, the rest of the body is read and dropped, up to these bounds: a client
# that writes its whole body before reading (urllib, httpx, without Expect: 100-continue)
# is otherwise reset by the close, with its body unread, and never sees the 413.
DRAIN_MAX_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 10.0


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            "body_too_large",
            f"request body exceeds the limit of {limit} bytes",
            headers={"Connection": "close"},
        )


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes`` without ever holding more than that in memory.

    A declared Content-Length over the limit is refused before any body reaches the app; a
    chunked or lying body as soon as the running count passes the limit (the endpoint
    reading it gets ``BodyTooLarge``, answered as 413 by the error handler). Either way the
    rest of the body is drained first (``drain``), so that the client can read the 413;
    not when the client waits for ``100 Continue`` (it sends nothing until told to) or
    declares more than ``DRAIN_MAX_BYTES`` (answered at once: draining would not reach
    its end).
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    if declared <= DRAIN_MAX_BYTES and not _expects_continue(scope):
                        await drain(receive)
                    exc = BodyTooLarge(self.max_bytes)
                    response = error_response(
                        exc.status, exc.code, exc.message, headers=exc.headers
                    )
                    await response(scope, receive, send)
                    return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    if message.get("more_body", False):
                        await drain(receive, seen)
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)


def _expects_continue(scope: Scope) -> bool:
    return any(
        name == b"expect" and value.lower() == b"100-continue" for name, value in scope["headers"]
    )


async def drain(receive: Receive, read: int = 0) -> bool:
    """Read and drop the rest of a request body, ``read`` bytes of which were read already;
    True when its end was reached within ``DRAIN_MAX_BYTES`` and ``DRAIN_SECONDS``.

    Memory stays at one chunk: the server hands the body over as it arrives. Past either
    bound the answer goes out anyway, and the close may reset the connection.
    """
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while read <= DRAIN_MAX_BYTES:
                message = await receive()
                if message["type"] != "http.request":
                    return False  # the client went away
                read += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return True
    except TimeoutError:
        pass
    log.info("request body not drained before its 413 (%d bytes read)", read)
    return False


# KEYS[1] bucket hash; ARGV rate per second, burst. Tokens refill continuously at ``rate``
# up to ``burst``; a request takes one. Returns {allowed, ms until one token is available}.
_TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local allowed = 0
local wait_ms = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait_ms = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {allowed, wait_ms}
"""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after_seconds: int = 0


class RateLimiter:
    def __init__(self, redis: aioredis.Redis, *, per_second: float, burst: int) -> None:
        self._script = redis.register_script(_TOKEN_BUCKET)
        self.per_second = per_second
        self.burst = burst

    async def check(self, token_id: str) -> Verdict:
        if self.per_second <= 0:
            return Verdict(True)
        try:
            allowed, wait_ms = await self._script(
                keys=[keys.rate_limit(token_id)], args=[self.per_second, self.burst]
            )
        except (RedisError, OSError) as exc:
            metrics.RATE_LIMITER_ERRORS.inc()
            log.warning("rate limiter unavailable (%s); letting the request through", exc)
            return Verdict(True)
        if int(allowed):
            return Verdict(True)
        metrics.RATE_LIMITED.inc()
        return Verdict(False, max(1, math.ceil(int(wait_ms) / 1000)))
