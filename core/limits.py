"""Request limits: the body-size cap, enforced while the body streams in, and the per-token
rate limit.

The rate limit is a token bucket kept in the queue Redis (``core.keys.rate_limit``), so it
holds across every API replica behind the load balancer, with Redis's clock as the one
clock all replicas share. A single Redis round trip (an EVALSHA of the script below) per
authenticated request is the cost.

When that Redis cannot be asked (down, or refusing writes because it is full: filling it
must not turn the limits off), each API process falls back to a bucket of its own with the
same rate and burst (``LocalBuckets``): a token keeps its limit per replica, and nobody is
refused because a cache is down. After a failure Redis is left alone for
``REDIS_RETRY_SECONDS`` (so an outage costs no time-out per request), then asked again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core import keys, metrics
from core.errors import ApiError, error_response

__all__ = [
    "BodyLimitMiddleware",
    "BodyTooLarge",
    "LocalBuckets",
    "RateLimiter",
    "SourceFailures",
    "Verdict",
]

log = logging.getLogger(__name__)

# Before a 413, the rest of the body is read and dropped, up to these bounds: a client
# that writes its whole body before reading (urllib, httpx, without Expect: 100-continue)
# is otherwise reset by the close, with its body unread, and never sees the 413.
DRAIN_MAX_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 10.0
# How long the limiter uses only its local buckets after Redis failed, before asking again.
REDIS_RETRY_SECONDS = 1.0


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


def _refill(
    tokens: float, elapsed_ms: float, *, rate: float, burst: int
) -> tuple[bool, float, int]:
    """The bucket step ``_TOKEN_BUCKET`` takes in Redis: (allowed, tokens left, ms to wait)."""
    tokens = min(burst, tokens + max(0.0, elapsed_ms) * rate / 1000)
    if tokens >= 1:
        return True, tokens - 1, 0
    return False, tokens, math.ceil((1 - tokens) * 1000 / rate)


class LocalBuckets:
    """Token buckets in this process, for while the queue Redis cannot be asked.

    The same rate and burst as the Redis buckets. A bucket untouched for as long as it takes
    to refill is full, exactly as if it did not exist, so those are dropped: memory grows
    with the tokens active in the last ``burst / rate`` seconds, not with every token seen.
    """

    def __init__(
        self,
        *,
        per_second: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        refused: Counter = metrics.RATE_LIMITED,
    ) -> None:
        self.per_second = per_second
        self.burst = burst
        self._clock = clock
        self._refused = refused
        self._full_after = burst / per_second if per_second > 0 else 0.0
        self._buckets: dict[str, tuple[float, float]] = {}  # token id -> (tokens, at)
        self._next_sweep = 0.0

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, token_id: str) -> Verdict:
        now = self._clock()
        if now >= self._next_sweep:
            self._buckets = {
                k: v for k, v in self._buckets.items() if now - v[1] < self._full_after
            }
            self._next_sweep = now + self._full_after
        tokens, at = self._buckets.get(token_id, (float(self.burst), now))
        allowed, left, wait_ms = _refill(
            tokens, (now - at) * 1000, rate=self.per_second, burst=self.burst
        )
        self._buckets[token_id] = (left, now)
        return _verdict(allowed, wait_ms, self._refused)


def _verdict(allowed: bool, wait_ms: int, refused: Counter = metrics.RATE_LIMITED) -> Verdict:
    if allowed:
        return Verdict(True)
    refused.inc()
    return Verdict(False, max(1, math.ceil(wait_ms / 1000)))


class RateLimiter:
    def __init__(self, redis: aioredis.Redis, *, per_second: float, burst: int) -> None:
        self._script = redis.register_script(_TOKEN_BUCKET)
        self.per_second = per_second
        self.burst = burst
        self._local = LocalBuckets(per_second=per_second, burst=burst)
        self._failing = False
        self._retry_at = 0.0  # while failing: when Redis is asked again

    async def check(self, token_id: str) -> Verdict:
        if self.per_second <= 0:
            return Verdict(True)
        if not self._failing or time.monotonic() >= self._retry_at:
            try:
                allowed, wait_ms = await self._script(
                    keys=[keys.rate_limit(token_id)], args=[self.per_second, self.burst]
                )
            except (RedisError, OSError) as exc:
                # Logged once per outage, not per request: an outage is a flood of these.
                if not self._failing:
                    log.warning(
                        "rate limiter: the queue Redis cannot be asked (%s); this API"
                        " process applies the limits itself until it can",
                        exc,
                    )
                self._failing = True
                self._retry_at = time.monotonic() + REDIS_RETRY_SECONDS
            else:
                if self._failing:
                    log.info("rate limiter: the queue Redis answers again")
                    self._failing = False
                return _verdict(bool(int(allowed)), int(wait_ms))
        metrics.RATE_LIMITER_ERRORS.inc()
        return self._local.take(token_id)


class SourceFailures:
    """Failed token lookups per client address, in this process.

    A made-up token costs a primary query before it can be refused; unlimited, one client
    sending them at about 1,000/s took a legitimate client's p90 from 5 ms to 400 ms. Each
    failed lookup takes from its source's bucket; a source whose bucket is empty is
    answered 429 *without* a lookup until it has refilled, whatever token it presents
    (tokens of a shared address wait with it). Per process, in memory: nothing a client
    does here reaches Redis, and an empty bucket ends with its wait.
    """

    def __init__(
        self, *, per_second: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_second = per_second
        self._clock = clock
        self._buckets = LocalBuckets(
            per_second=per_second, burst=burst, clock=clock, refused=metrics.AUTH_FAILURES_REFUSED
        )
        self._blocked: dict[str, float] = {}  # source -> when it may be looked up again

    def blocked(self, source: str) -> Verdict:
        """Before a lookup: refused while ``source`` has used up its failures."""
        if self.per_second <= 0:
            return Verdict(True)
        until = self._blocked.get(source)
        if until is None:
            return Verdict(True)
        now = self._clock()
        if now >= until:
            del self._blocked[source]
            return Verdict(True)
        metrics.AUTH_FAILURES_REFUSED.inc()
        return Verdict(False, max(1, math.ceil(until - now)))

    def failed(self, source: str) -> Verdict:
        """After a failed lookup: whether ``source`` may still fail."""
        if self.per_second <= 0:
            return Verdict(True)
        verdict = self._buckets.take(source)
        if not verdict.allowed:
            now = self._clock()
            if len(self._blocked) > _MAX_BLOCKED:
                self._blocked = {k: v for k, v in self._blocked.items() if v > now}
            self._blocked[source] = now + verdict.retry_after_seconds
        return verdict


# Sources blocked at once before the expired ones are swept out.
_MAX_BLOCKED = 10_000
