"""What ``/readyz`` says, probed at most once per interval however often it is asked.

``/readyz`` is unauthenticated: a flood of it was a flood of primary queries and Redis
pings. One probe runs at a time per process; callers that arrive while it runs wait for
that one, and its answer serves every caller for ``REUSE_SECONDS``.
"""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core import metrics
from core.db import Databases
from core.errors import error_body
from wire import Probe, Readiness, ReplicaState

__all__ = ["PROBE_TIMEOUT_SECONDS", "REUSE_SECONDS", "ReadinessProbe"]

PROBE_TIMEOUT_SECONDS = 2.0
REUSE_SECONDS = 1.0


class ReadinessProbe:
    def __init__(self, db: Databases, queue_redis: aioredis.Redis) -> None:
        self.db = db
        self.queue_redis = queue_redis
        self._running: asyncio.Future[tuple[Probe, Probe]] | None = None
        self._last: tuple[float, tuple[Probe, Probe]] | None = None

    async def get(self) -> Readiness:
        """Ready when the primary answers; the replica and the queue Redis are reported
        only, since reads fall back to the primary and jobs are accepted without the queue.
        The replica's state is the process's own knowledge, always current."""
        primary, queue_redis = await self._probes()
        body = Readiness(
            status="ready" if primary.up else "unavailable",
            primary=primary,
            replica=ReplicaState(**self.db.replica_state()),
            queue_redis=queue_redis,
        )
        if not primary.up:
            body.error = error_body("unavailable", "the primary database does not answer")
        return body

    async def _probes(self) -> tuple[Probe, Probe]:
        if self._last is not None and time.monotonic() - self._last[0] < REUSE_SECONDS:
            return self._last[1]
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._probe())
        # Shielded: a caller that goes away must not cancel the probe the others wait on.
        return await asyncio.shield(self._running)

    async def _probe(self) -> tuple[Probe, Probe]:
        metrics.READINESS_PROBES.inc()
        primary = Probe(up=True)
        try:
            await asyncio.wait_for(self.db.primary.fetch_val("SELECT 1"), PROBE_TIMEOUT_SECONDS)
        except Exception as exc:
            primary = Probe(up=False, error=f"{type(exc).__name__}: {exc}")
        queue_redis = Probe(up=True)
        try:
            await asyncio.wait_for(self.queue_redis.ping(), PROBE_TIMEOUT_SECONDS)
        except (RedisError, OSError, TimeoutError) as exc:
            queue_redis = Probe(up=False, error=f"{type(exc).__name__}: {exc}")
        self._last = (time.monotonic(), (primary, queue_redis))
        return primary, queue_redis
