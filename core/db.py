"""Two connections to Postgres: writes to the primary, plain reads to the streaming replica.

A read that the replica cannot answer (down, restarting, cancelled by recovery) is retried
on the primary at once; the replica is then marked down and probed in the background until
it answers again. Callers choose ``primary=True`` for reads that must see their own writes.

The other way round, a read meant for the primary that the primary cannot answer goes to
the replica while the replica is up: with the primary gone, the replica holds the newest
data there is (a write it had not received yet is out of reach either way), so reads keep
working through a primary outage instead of failing with it. Writes have no such way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg
from databases import Database

log = logging.getLogger(__name__)

Row = Mapping[str, Any]

# SQLSTATE classes that mean "this server cannot answer now", not "your query is wrong":
# 08 connection exception, 57 operator intervention (shutdown, recovery), 53 resources.
_UNAVAILABLE_CLASSES = ("08", "57", "53")
# asyncpg waits 60 s for a connection by default: a server whose node vanished (SYNs
# unanswered) would hold every request that long before any fallback could start.
CONNECT_TIMEOUT_SECONDS = 5.0
# 40001 on a hot standby: the statement was cancelled by a conflict with recovery.
_RETRY_ELSEWHERE = ("40001",)


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError | ConnectionError):
        return True
    # "another operation is in progress": a pooled connection left in a broken state while
    # the server went away (seen with asyncpg 0.32 as a replica restarts).
    if isinstance(exc, asyncpg.InternalClientError):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", "") or ""
        return state[:2] in _UNAVAILABLE_CLASSES
    return False


def _is_retryable(exc: BaseException) -> bool:
    if _is_unavailable(exc):
        return True
    state = getattr(exc, "sqlstate", "") or ""
    return isinstance(exc, asyncpg.PostgresError) and state in _RETRY_ELSEWHERE


class Databases:
    def __init__(
        self,
        primary_url: str,
        replica_url: str | None = None,
        *,
        probe_seconds: float = 1.0,
        replica_timeout_seconds: float = 2.0,
        on_fallback: Callable[[str], None] | None = None,
        on_read: Callable[[str], None] | None = None,
        pool_max: int = 10,
    ) -> None:
        pool: dict[str, Any] = {
            "min_size": 1,
            "max_size": pool_max,
            "timeout": CONNECT_TIMEOUT_SECONDS,
        }
        self.primary = Database(primary_url, **pool)
        self.replica = Database(replica_url, **pool) if replica_url else None
        self.replica_up = False
        self.fallbacks = 0
        # Reads meant for the primary that the replica answered while the primary was down.
        self.primary_fallbacks = 0
        self._probe_seconds = probe_seconds
        self._replica_timeout = replica_timeout_seconds
        self._on_fallback = on_fallback
        # Told "replica" or "primary" after each plain read: which server answered it.
        self._on_read = on_read
        self._probe_task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        await self.primary.connect()
        if self.replica is not None:
            try:
                await asyncio.wait_for(self.replica.connect(), self._replica_timeout)
                self.replica_up = True
            except Exception as exc:
                if not _is_unavailable(exc) and not isinstance(exc, asyncio.TimeoutError):
                    raise
                log.warning("replica unavailable at start-up (%s); reading from primary", exc)
                self._mark_down()

    async def disconnect(self) -> None:
        if self._probe_task is not None:
            self._probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe_task
            self._probe_task = None
        if self.replica is not None and self.replica.is_connected:
            with contextlib.suppress(Exception):
                await self.replica.disconnect()
        await self.primary.disconnect()

    # --- reads
    async def read_one(
        self, query: str, values: Mapping[str, Any] | None = None, *, primary: bool = False
    ) -> Row | None:
        return await self._read("fetch_one", query, values, primary)  # type: ignore[no-any-return]

    async def read_all(
        self, query: str, values: Mapping[str, Any] | None = None, *, primary: bool = False
    ) -> list[Row]:
        return await self._read("fetch_all", query, values, primary)  # type: ignore[no-any-return]

    async def read_val(
        self, query: str, values: Mapping[str, Any] | None = None, *, primary: bool = False
    ) -> Any:
        return await self._read("fetch_val", query, values, primary)

    async def _read(
        self, method: str, query: str, values: Mapping[str, Any] | None, primary: bool
    ) -> Any:
        values = dict(values or {})
        if not primary and self.replica is not None and self.replica_up:
            try:
                result = await asyncio.wait_for(
                    getattr(self.replica, method)(query, values), self._replica_timeout
                )
                if self._on_read is not None:
                    self._on_read("replica")
                return result
            except Exception as exc:
                if not _is_retryable(exc):
                    raise
                reason = type(exc).__name__
                log.warning("replica read failed (%s); retrying on primary", reason)
                self.fallbacks += 1
                if self._on_fallback is not None:
                    self._on_fallback(reason)
                if _is_unavailable(exc):
                    self._mark_down()
        elif not primary and self.replica is not None:
            self.fallbacks += 1
            if self._on_fallback is not None:
                self._on_fallback("replica_down")
        try:
            result = await getattr(self.primary, method)(query, values)
        except Exception as exc:
            if not _is_unavailable(exc) or self.replica is None or not self.replica_up:
                raise
            return await self._read_replica_for_primary(method, query, values, exc)
        if self._on_read is not None:
            self._on_read("primary")
        return result

    async def _read_replica_for_primary(
        self, method: str, query: str, values: dict[str, Any], primary_error: BaseException
    ) -> Any:
        """The primary is unavailable: the replica answers instead, or the primary's error
        stands (the caller's 503 should name the primary, the server that was asked)."""
        assert self.replica is not None
        self.primary_fallbacks += 1
        log.warning("primary read failed (%s); answering from the replica", primary_error)
        try:
            result = await asyncio.wait_for(
                getattr(self.replica, method)(query, values), self._replica_timeout
            )
        except Exception as exc:
            if _is_unavailable(exc):
                self._mark_down()
            raise primary_error from exc
        if self._on_read is not None:
            self._on_read("replica")
        return result

    # --- replica health
    def _mark_down(self) -> None:
        self.replica_up = False
        if self._probe_task is None or self._probe_task.done():
            self._probe_task = asyncio.get_running_loop().create_task(self._probe())

    async def _probe(self) -> None:
        assert self.replica is not None
        while True:
            await asyncio.sleep(self._probe_seconds)
            try:
                if not self.replica.is_connected:
                    await asyncio.wait_for(self.replica.connect(), self._replica_timeout)
                await asyncio.wait_for(self.replica.fetch_val("SELECT 1"), self._replica_timeout)
            except Exception as exc:
                log.debug("replica probe failed: %s", exc)
                if self.replica.is_connected:
                    with contextlib.suppress(Exception):
                        await self.replica.disconnect()
                continue
            log.info("replica is back; reads return to it")
            self.replica_up = True
            return

    def replica_state(self) -> dict[str, Any]:
        return {
            "configured": self.replica is not None,
            "up": self.replica is not None and self.replica_up,
            "fallbacks": self.fallbacks,
            "primary_fallbacks": self.primary_fallbacks,
        }
