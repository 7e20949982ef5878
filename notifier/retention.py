"""Retention: delete finished jobs older than their token's retention period.

Runs in every notifier replica, like the scheduler, but one purges at a time: each batch
takes a transaction-scoped advisory lock (``core.store.retention.take_purge_lock``) and a
replica that finds it taken leaves the pass to the holder. A batch is one short
transaction: it locks at most ``retention_batch`` expired jobs of one token with
``SKIP LOCKED`` (a job a transition holds waits for the next pass), under a
``lock_timeout`` so that it gives up rather than queue behind anyone, removes their
entries from the streams Redis, then deletes the job rows, everything else following by
cascade. Batches are separated by ``retention_pause_seconds``, so a purge of a large
backlog shares Postgres with the API rather than monopolising it.

Redis before the commit: if the commit then fails, Redis lacks entries Postgres still has,
which every reader already copes with (the feeds fill gaps from Postgres); the other order
could leave entries of deleted jobs in Redis for as long as a token stream lives. With the
streams Redis down no batch commits, and the purge resumes once it answers.

The clock is injectable (``clock``): tests age jobs instead of waiting for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import redis.asyncio as redis
from databases import Database
from prometheus_client import Counter, Gauge

from core import keys
from core.backoff import Backoff
from core.events import stream_id
from core.metrics import REGISTRY
from core.settings import Settings
from core.store import retention as store

__all__ = [
    "JOBS_DELETED",
    "LAST_PASS_SECONDS",
    "ROWS_DELETED",
    "STREAM_ENTRIES_DELETED",
    "Pass",
    "Purger",
]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

JOBS_DELETED = Counter(
    "homerun_retention_jobs_deleted_total",
    "Finished jobs deleted by retention.",
    registry=REGISTRY,
)
ROWS_DELETED = Counter(
    "homerun_retention_rows_deleted_total",
    "Rows deleted by retention with their jobs, by table.",
    ["table"],
    registry=REGISTRY,
)
STREAM_ENTRIES_DELETED = Counter(
    "homerun_retention_stream_entries_deleted_total",
    "Entries and keys of deleted jobs removed from the streams Redis, by kind"
    " (token_entry: an event in a token's stream; key: a job's event or log stream).",
    ["kind"],
    registry=REGISTRY,
)
BATCHES_ABANDONED = Counter(
    "homerun_retention_batches_abandoned_total",
    "Batches given up because a row lock was not granted within the lock timeout.",
    registry=REGISTRY,
)
LAST_PASS_SECONDS = Gauge(
    "homerun_retention_last_pass_seconds",
    "How long this notifier's last retention pass took.",
    registry=REGISTRY,
)
LAST_PASS_JOBS = Gauge(
    "homerun_retention_last_pass_jobs",
    "Jobs this notifier's last retention pass deleted.",
    registry=REGISTRY,
)

# Failures of a store that is down or restarting; anything else is a bug and propagates.
_TRANSIENT: tuple[type[BaseException], ...] = (
    redis.RedisError,
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)

# Token stream entries removed per XDEL call, so one call never blocks Redis for long.
XDEL_CHUNK = 500


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Pass:
    """What one pass did."""

    jobs: int = 0
    batches: int = 0
    abandoned: int = 0  # batches that hit the lock timeout
    busy: bool = False  # another notifier held the purge lock: it does the purging


class Purger:
    def __init__(
        self,
        db: Database,
        streams: redis.Redis,
        settings: Settings,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.db = db
        self.streams = streams
        self.settings = settings
        self.clock = clock
        self.deleted = 0  # jobs this purger deleted

    async def run_once(self) -> Pass:
        """Delete every job expired now, batch by batch, token by token."""
        started = time.monotonic()
        done = Pass()
        now = self.clock()
        for period in await store.token_periods(self.db, self.settings.retention_seconds):
            cutoff = now - timedelta(seconds=period.seconds)
            while True:
                try:
                    deleted = await self._batch(period.token_id, cutoff)
                except asyncpg.LockNotAvailableError:
                    # A row it must change (a re-run's, a tick's) is held: next pass.
                    BATCHES_ABANDONED.inc()
                    done.abandoned += 1
                    break
                if deleted is None:
                    done.busy = True
                    return done
                done.batches += 1
                done.jobs += deleted
                if deleted < self.settings.retention_batch:
                    break
                await asyncio.sleep(self.settings.retention_pause_seconds)
        LAST_PASS_SECONDS.set(time.monotonic() - started)
        LAST_PASS_JOBS.set(done.jobs)
        return done

    async def _batch(self, token_id: str, cutoff: datetime) -> int | None:
        """Delete one batch of the token's expired jobs; None if another notifier purges."""
        async with self.db.connection() as conn, conn.transaction():
            if not await store.take_purge_lock(conn):
                return None
            # SET LOCAL takes no bind parameters; the value is an int from the settings.
            await conn.execute(
                f"SET LOCAL lock_timeout = {int(self.settings.retention_lock_timeout_ms)}"
            )
            job_ids = await store.claim_expired(
                conn, token_id, cutoff, self.settings.retention_batch
            )
            if not job_ids:
                return 0
            entries = await store.stream_entries(conn, job_ids)
            counts = await store.count_children(conn, job_ids)
            await self._forget_streams(job_ids, entries)
            await store.unlink_reruns(conn, job_ids)
            deleted = await store.delete_jobs(conn, job_ids)
        self.deleted += deleted
        JOBS_DELETED.inc(deleted)
        ROWS_DELETED.labels("tasks").inc(counts.tasks)
        ROWS_DELETED.labels("attempts").inc(counts.attempts)
        ROWS_DELETED.labels("results").inc(counts.results)
        ROWS_DELETED.labels("events").inc(len(entries))
        log.info("retention: deleted %d jobs of token %s", deleted, token_id)
        return deleted

    async def _forget_streams(
        self, job_ids: Sequence[str], entries: Sequence[tuple[str, int]]
    ) -> None:
        """Remove the jobs' streams, and their events from their tokens' streams."""
        by_token: dict[str, list[str]] = defaultdict(list)
        for token_id, token_seq in entries:
            by_token[token_id].append(stream_id(token_seq))
        async with self.streams.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.unlink(keys.job_stream(job_id), keys.log_stream(job_id), keys.log_seqs(job_id))
            for token_id, ids in by_token.items():
                for i in range(0, len(ids), XDEL_CHUNK):
                    pipe.xdel(keys.token_stream(token_id), *ids[i : i + XDEL_CHUNK])
            replies = await pipe.execute()
        removed_keys = sum(int(r) for r in replies[: len(job_ids)])
        removed_entries = sum(int(r) for r in replies[len(job_ids) :])
        STREAM_ENTRIES_DELETED.labels("key").inc(removed_keys)
        STREAM_ENTRIES_DELETED.labels("token_entry").inc(removed_entries)

    async def run(self, stop: asyncio.Event) -> None:
        """Pass after pass until ``stop``; a store outage pauses it with backoff."""
        pauses = Backoff(0.1, 2.0)
        while not stop.is_set():
            try:
                await self.run_once()
            except _TRANSIENT as exc:
                delay = pauses.failed()
                log.warning("retention pass failed (%s); retrying in %.1fs", exc, delay)
                await _wait(stop, delay)
                continue
            pauses.reset()
            await _wait(stop, self.settings.retention_poll_seconds)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
