"""Read-your-writes: a token that just wrote reads from the primary for a while.

After a token creates or cancels a job, its reads are pinned to the primary for
``settings.read_your_writes_seconds``, long enough to cover any sane replication lag, so
it never sees its job missing or its status stale. The mark lives in the queue Redis
(``core.keys.recent_write``) so that the next request may land on any API replica. When
that Redis cannot be asked, reads go to the primary: correctness over load.

On top of that, a single-job read that the replica answers with "no such job" is retried
on the primary before it becomes a 404 (``Reads.one``), which covers a client that got its
job id from elsewhere, or a replica lagging past the window.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core import keys, metrics
from core.db import Databases, Row

__all__ = ["Reads"]

log = logging.getLogger(__name__)


class Reads:
    """Routes a token's reads to the replica or the primary."""

    def __init__(self, db: Databases, redis: aioredis.Redis, *, window_seconds: float) -> None:
        self.db = db
        self._redis = redis
        self._window = window_seconds
        # This replica's own recent writers, so that its own answers never depend on Redis.
        self._local: dict[str, float] = {}

    async def note_write(self, token_id: str) -> None:
        """Call after a token's write committed."""
        if self._window <= 0:
            return
        now = time.monotonic()
        self._local[token_id] = now + self._window
        if len(self._local) > 10_000:
            self._local = {k: v for k, v in self._local.items() if v > now}
        try:
            await self._redis.set(keys.recent_write(token_id), "1", px=int(self._window * 1000))
        except (RedisError, OSError) as exc:
            # Other replicas then cannot see the mark, but they cannot reach Redis either
            # (the same server), and without it they read from the primary.
            metrics.READ_YOUR_WRITES_ERRORS.inc()
            log.warning("could not record a recent write in Redis: %s", exc)

    async def pinned(self, token_id: str) -> bool:
        """True when this token's reads must go to the primary."""
        if self.db.replica is None or self._window <= 0:
            return False  # nothing to pin, or pinning switched off
        until = self._local.get(token_id)
        if until is not None and until > time.monotonic():
            return True
        try:
            return bool(await self._redis.exists(keys.recent_write(token_id)))
        except (RedisError, OSError) as exc:
            metrics.READ_YOUR_WRITES_ERRORS.inc()
            log.warning("cannot tell whether a token wrote recently (%s); reading the primary", exc)
            return True

    async def all(
        self, token_id: str, query: str, values: Mapping[str, Any] | None = None
    ) -> list[Row]:
        return await self.db.read_all(query, values, primary=await self.pinned(token_id))

    async def one(
        self, token_id: str, query: str, values: Mapping[str, Any] | None = None
    ) -> Row | None:
        """One row; a miss on the replica is asked again of the primary."""
        primary = await self.pinned(token_id)
        row = await self.db.read_one(query, values, primary=primary)
        if row is None and not primary and self.db.replica is not None:
            row = await self.db.read_one(query, values, primary=True)
        return row
