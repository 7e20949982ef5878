"""The scheduler: fires due schedule ticks. It runs inside every notifier replica.

Any number of them may run: each pass over a schedule is one transaction that locks the
schedule's row (``SKIP LOCKED``: another scheduler's busy schedule is passed over) and
claims each tick by its unique row before creating its job
(``core.transitions.scheduling``), so a tick gets exactly one job whoever fires it and
whenever a scheduler dies. Created tasks are handed to the queue after the commit; with
the queue Redis down the runner's reconciler enqueues them from Postgres.

The clock is injectable (``clock``): tests move time instead of waiting for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import redis.asyncio as aioredis
from databases import Database

from core import handoff, transitions
from core.backoff import Backoff
from core.settings import Settings
from core.validation import JobValidator
from plugins.manager import collect_task_types, make_plugin_manager
from wire.schedules import TickOutcome

__all__ = ["MAX_TICKS_PER_PASS", "PASS_OVER_SECONDS", "Clock", "Scheduler", "utc_now"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# Ticks of one schedule looked at in one transaction: a long outage of a frequent schedule
# is worked off in passes of this size rather than in one huge transaction.
MAX_TICKS_PER_PASS = 1000

# A schedule whose pass Postgres refused (not an outage: a statement of its own) is left
# alone this long, so it cannot hold up every other schedule by failing first each time.
PASS_OVER_SECONDS = 30.0

# Failures of a store that is down or restarting; anything else is a bug and propagates.
_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    def __init__(
        self,
        db: Database,
        queue_redis: aioredis.Redis,
        validator: JobValidator,
        settings: Settings,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.db = db
        self.queue_redis = queue_redis
        self.validator = validator
        self.settings = settings
        self.clock = clock
        self.created = 0  # jobs this scheduler created
        self.skipped = 0  # ticks this scheduler recorded as skipped
        self._passed_over: dict[str, float] = {}  # schedule id -> monotonic time to retry

    @classmethod
    def validator_for(cls, settings: Settings) -> JobValidator:
        """The API's validator: the same plugins, so a tick's job is judged as a POST is."""
        registry = collect_task_types(make_plugin_manager(disabled=settings.disabled_plugins))
        return JobValidator(registry, settings)

    async def run_once(self) -> int:
        """Deal with every schedule due now; the number of passes made."""
        passes = 0
        moment = time.monotonic()
        self._passed_over = {k: t for k, t in self._passed_over.items() if t > moment}
        while True:
            try:
                done = await transitions.advance_due(
                    self.db,
                    now=self.clock(),
                    validate=self.validator.validate,
                    late_seconds=self.settings.schedule_late_seconds,
                    catchup_max=self.settings.schedule_catchup_max,
                    max_ticks=MAX_TICKS_PER_PASS,
                    passed_over=list(self._passed_over),
                )
            except transitions.PassFailed as exc:
                log.error("%s; passed over for %.0fs", exc, PASS_OVER_SECONDS, exc_info=exc)
                self._passed_over[exc.schedule_id] = time.monotonic() + PASS_OVER_SECONDS
                continue
            if done is None:
                return passes
            passes += 1
            for fired in done.ticks:
                if fired.outcome is TickOutcome.CREATED:
                    self.created += 1
                else:
                    self.skipped += 1
                    log.info(
                        "schedule %s: tick %s skipped: %s",
                        done.schedule_id,
                        fired.tick.isoformat(),
                        fired.reason,
                    )
            await handoff.signal_cancels(self.queue_redis, done.cancel_running)
            await handoff.enqueue(self.queue_redis, done.ready)

    async def run(self, stop: asyncio.Event) -> None:
        pauses = Backoff(0.1, 2.0)
        while not stop.is_set():
            try:
                await self.run_once()
            except _TRANSIENT as exc:
                delay = pauses.failed()
                log.warning("scheduler pass failed (%s); retrying in %.1fs", exc, delay)
                await _wait(stop, delay)
                continue
            pauses.reset()
            await _wait(stop, self.settings.schedule_poll_seconds)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
