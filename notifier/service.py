"""The notifier service: relays the events outbox to the streams Redis and sends webhooks.

Run any number of replicas (``homerun notifier``): a job's events are relayed by one of
them at a time (``notifier.relay``) and a webhook delivery is claimed by one of them at a
time (``notifier.webhooks``).

Wake-ups: ``LISTEN homerun_events`` names the job whose event just committed, so it is
relayed at once; a sweep every ``notifier_poll_seconds`` catches whatever a lost
notification, a busy lock or an outage left behind. When the streams Redis is down the
events wait in Postgres and the relay retries with capped exponential backoff; webhooks
do not depend on Redis and keep going.

The webhook workers are woken only when a delivery was created (most jobs have no callback
URL, and waking them for every relayed event cost two queries per worker per event);
otherwise they sleep until the next delivery is due, or ``notifier_poll_seconds``.

Each replica also runs the scheduler (``core.scheduler``): schedules need no service of
their own, and the scheduler's replicas are the notifier's, any number of them.

And the purger (``notifier.retention``), which deletes expired jobs, one replica at a
time; with ``notifier_metrics_port`` set, the replica serves its figures on /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

import asyncpg
import httpx
import redis.asyncio as redis
from databases import Database
from prometheus_client import start_http_server

from core.backoff import Backoff
from core.metrics import REGISTRY
from core.outbox import EVENTS_CHANNEL
from core.scheduler import Scheduler
from core.settings import Settings
from core.store import webhooks as webhook_store
from notifier import webhooks
from notifier.relay import Relay
from notifier.retention import Purger

__all__ = ["Notifier", "main", "serve"]

log = logging.getLogger(__name__)

BACKOFF_FIRST_SECONDS = 0.1
BACKOFF_MAX_SECONDS = 2.0
# A job whose lock another replica holds is tried again this soon: that replica may have
# read the job's events just before the one that woke us committed.
BUSY_RETRY_SECONDS = 0.05
WEBHOOK_WORKERS = 4

# Failures of a store that is down or restarting; anything else is a bug and propagates.
_TRANSIENT: tuple[type[BaseException], ...] = (
    redis.RedisError,
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


class Notifier:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        streams: redis.Redis,
        http: httpx.AsyncClient,
        scheduler: Scheduler | None = None,
        purger: Purger | None = None,
    ) -> None:
        self.settings = settings
        self.scheduler = scheduler
        self.purger = purger
        self.db = db
        self.relay = Relay(
            db, streams, maxlen=settings.stream_maxlen, ttl_seconds=settings.stream_ttl_seconds
        )
        self.deliverer = webhooks.Deliverer(
            db,
            http,
            webhooks.Policy(
                allow_private=settings.webhook_allow_private,
                max_attempts=settings.webhook_max_attempts,
                retry_base_seconds=settings.webhook_retry_base_seconds,
                retry_max_seconds=settings.webhook_retry_max_seconds,
                timeout_seconds=settings.webhook_timeout_seconds,
            ),
        )
        self._dirty: set[str] = set()
        self._sweep_requested = False
        self._wake_relay = asyncio.Event()
        self._wake_webhooks = asyncio.Event()
        self.relayed = 0  # events appended to the streams Redis by this replica

    # --- wake-ups
    def notify(self, job_id: str) -> None:
        self._dirty.add(job_id)
        self._wake_relay.set()

    def _on_notification(self, conn: object, pid: int, channel: str, payload: object) -> None:
        self.notify(str(payload))

    async def _listen(self, stop: asyncio.Event) -> None:
        """Hold a LISTEN connection; reconnect when it drops (the sweep covers the gap)."""
        pauses = _backoff()
        while not stop.is_set():
            try:
                conn = await asyncpg.connect(self.settings.database_url)
            except _TRANSIENT as exc:
                log.warning("LISTEN connection failed (%s); retrying", exc)
                await _wait(stop, pauses.failed())
                continue
            pauses.reset()
            closed = asyncio.Event()
            conn.add_termination_listener(_setter(closed))
            try:
                await conn.add_listener(EVENTS_CHANNEL, self._on_notification)
                # Anything committed while we were not listening was never named to us:
                # only a sweep finds it.
                self._sweep_requested = True
                self._wake_relay.set()
                while not stop.is_set() and not closed.is_set() and not conn.is_closed():
                    await _wait_any(stop, closed, self.settings.notifier_poll_seconds)
            except _TRANSIENT as exc:
                log.warning("LISTEN connection lost (%s); reconnecting", exc)
            finally:
                with contextlib.suppress(*_TRANSIENT):
                    await conn.close(timeout=2)

    # --- relay
    async def relay_once(self, *, sweep: bool) -> bool:
        """Relay every dirty job (and, on a sweep, every job with unrelayed events).

        True when some job was locked by another replica and must be tried again soon.
        """
        swept: list[str] = []
        if sweep:
            # Postgres only, committed on its own: a terminal event whose relay fails (the
            # streams Redis is down, so relay_job's transaction, delivery included, rolls
            # back) still gets its webhook. A failed round makes the next one a sweep
            # (_relay_loop), so this runs again right after each failure, for as long as
            # the outage lasts. Otherwise relay_job schedules deliveries itself.
            if await webhook_store.schedule(self.db):
                self._wake_webhooks.set()
            swept = await self.relay.pending_jobs()
        # Taken after the sweep's queries so that a failure there leaves them dirty.
        jobs = self._dirty | set(swept)
        self._dirty = set()
        busy = False
        remaining = sorted(jobs)
        try:
            while remaining:
                job_id = remaining[0]
                result = await self.relay.relay_job(job_id)
                if not result.locked:
                    self._dirty.add(job_id)
                    busy = True
                else:
                    self.relayed += result.appended
                    if result.scheduled:
                        self._wake_webhooks.set()
                    if result.more:
                        continue
                remaining.pop(0)
        finally:
            self._dirty.update(remaining)  # not relayed (an outage): keep them for next time
        return busy

    async def _relay_loop(self, stop: asyncio.Event) -> None:
        pauses = _backoff()
        next_sweep = 0.0
        while not stop.is_set():
            now = time.monotonic()
            sweep = now >= next_sweep or self._sweep_requested
            self._sweep_requested = False
            self._wake_relay.clear()
            try:
                busy = await self.relay_once(sweep=sweep)
            except _TRANSIENT as exc:
                delay = pauses.failed()
                log.warning(
                    "relay failed (%s: %s); retrying in %.1fs", type(exc).__name__, exc, delay
                )
                await _wait(stop, delay)
                next_sweep = 0.0  # after an outage, look at everything again
                continue
            pauses.reset()
            if sweep:
                next_sweep = now + self.settings.notifier_poll_seconds
            timeout = max(0.0, next_sweep - time.monotonic())
            if busy:
                timeout = min(timeout, BUSY_RETRY_SECONDS)
            await _wait_any(stop, self._wake_relay, timeout)

    # --- webhooks
    async def _webhook_worker(self, stop: asyncio.Event) -> None:
        pauses = _backoff()
        while not stop.is_set():
            # Cleared before looking, not after: a delivery created while we look sets it
            # again, so it wakes us (or a sibling that looks after it) instead of waiting
            # for the next poll.
            self._wake_webhooks.clear()
            try:
                if await self.deliverer.deliver_one():
                    continue
                due_in = await self.deliverer.next_due_in()
            except _TRANSIENT as exc:
                log.warning("webhook delivery failed (%s); retrying", exc)
                await _wait(stop, pauses.failed())
                continue
            pauses.reset()
            timeout = self.settings.notifier_poll_seconds
            if due_in is not None:
                timeout = min(timeout, due_in)
            await _wait_any(stop, self._wake_webhooks, timeout)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; a relay in progress finishes its transaction first."""
        tasks = [
            asyncio.create_task(self._listen(stop), name="notifier-listen"),
            asyncio.create_task(self._relay_loop(stop), name="notifier-relay"),
            *(
                asyncio.create_task(self._webhook_worker(stop), name=f"notifier-webhooks-{i}")
                for i in range(WEBHOOK_WORKERS)
            ),
        ]
        if self.scheduler is not None:
            tasks.append(asyncio.create_task(self.scheduler.run(stop), name="notifier-scheduler"))
        if self.purger is not None:
            tasks.append(asyncio.create_task(self.purger.run(stop), name="notifier-retention"))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # a crashed loop takes the service down rather than limping on
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _backoff() -> Backoff:
    """A loop's pauses while a store is down: 0.1 s, doubling to 2 s; no jitter, since each
    replica waits on its own connection and there is no crowd to spread out."""
    return Backoff(BACKOFF_FIRST_SECONDS, BACKOFF_MAX_SECONDS)


def _setter(event: asyncio.Event) -> Callable[[object], None]:
    return lambda _conn: event.set()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _wait_any(a: asyncio.Event, b: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.create_task(a.wait()), asyncio.create_task(b.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    from core.migrate import migrate

    await migrate(settings.database_url)
    # The relay, the webhook workers, the scheduler and the purger each hold one
    # connection at a time.
    db = Database(settings.database_url, min_size=1, max_size=WEBHOOK_WORKERS + 4)
    streams = redis.Redis.from_url(
        settings.events_redis_url, socket_timeout=5, socket_connect_timeout=2
    )
    queue_redis = redis.Redis.from_url(
        settings.queue_redis_url, socket_timeout=5, socket_connect_timeout=2
    )
    metrics_server = _serve_metrics(settings.notifier_metrics_port)
    await db.connect()
    try:
        scheduler = Scheduler(db, queue_redis, Scheduler.validator_for(settings), settings)
        purger = Purger(db, streams, settings)
        async with httpx.AsyncClient(follow_redirects=False) as http:
            await Notifier(settings, db, streams, http, scheduler, purger).run(stop)
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
        await streams.aclose()
        await queue_redis.aclose()
        await db.disconnect()


def _serve_metrics(port: int) -> WSGIServer | None:
    """prometheus-client's own HTTP server (a thread) for /metrics; None when port is 0."""
    if not port:
        return None
    server, _thread = start_http_server(port, registry=REGISTRY)
    return server


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = Settings.from_env()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("notifier started")
        await serve(settings, stop)
        log.info("notifier stopped")

    asyncio.run(run())
