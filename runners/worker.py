"""The runner: takes tasks from the queue and runs each attempt in a throwaway container.

One task, start to end (``Runner._handle``), reads top to bottom:

1. take a delivery from the queue (``core.queue.claim``);
2. start the attempt in Postgres (``claim_attempt``): a stale delivery is settled and dropped;
3. the task type's plugin builds the container spec (``PayloadError`` fails the task);
4. the container runs while a heartbeat extends the lease; a lost lease kills it and
   writes nothing, a cancel (pub/sub, key or heartbeat) kills it within 2 s;
5. the ``task_output`` hook turns the finished run into the output;
6. ``finish_attempt`` persists the result in one transaction (fenced by attempt number);
7. the delivery is acknowledged and the tasks that became ready are enqueued.

Postgres is the truth and every write is fenced, so the runner may die between any two
steps: the lease runs out, the reconciler hands the task to another runner, and the
container is swept. SIGTERM stops claiming, gives running attempts
``shutdown_grace_seconds``, then kills what is left and reports it as an infrastructure
failure, which is retried elsewhere without using up the task's attempts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pluggy
import redis.asyncio as redis
from databases import Database
from redis.exceptions import RedisError

from core import egressgate, handoff, keys, logstream, queue, tokens
from core import transitions as tr
from core.models import FailureKind
from core.sealing import Keyring, TamperedSecret, UnknownKey
from core.settings import Settings, env_name
from core.store import artifacts as artifact_store
from core.store import secrets as secret_store
from core.store import tasks as task_store
from plugins.manager import collect_task_types
from plugins.tasktypes import (
    FILES_DIR,
    ContainerSpec,
    NetworkPolicy,
    PayloadError,
    TaskContext,
)
from runners import artifacts, lostruns, reconciler, workspace
from runners.containers import AttemptLabels, Engine, instance_name
from runners.livelogs import LivePublisher, LogSink
from runners.outcome import failed, outcome
from runners.redaction import Redactions
from runners.results import Stop, StopReason

__all__ = ["LogSink", "Runner"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# How often the runner looks at cancel keys, the backup for a missed pub/sub message.
CANCEL_POLL_SECONDS = 0.5
# Longest idle sleep between two looks at the queue (wake-ups usually come sooner).
IDLE_WAIT_SECONDS = 1.0
# Pause after the queue Redis or Postgres failed, before trying again.
ERROR_PAUSE_SECONDS = 1.0
# How soon a retry held back for a lost run on another engine is looked at again.
LOST_RUN_RECHECK_SECONDS = 1.0
# How long an egress attempt's proxy credential outlives the attempt's own bounds.
EGRESS_CREDENTIAL_MARGIN_SECONDS = 300


class Runner:
    """A runner process's work: ``await Runner(settings, pm).run()``; ``stop()`` to end.

    ``run(burst=True)`` returns once the queue is empty and nothing runs (tests). The
    database, Redis and engine are made from ``settings`` unless passed in; ``log_sink``
    replaces publishing live lines to the streams Redis.
    """

    def __init__(
        self,
        settings: Settings,
        pm: pluggy.PluginManager,
        *,
        db: Database | None = None,
        queue_redis: redis.Redis | None = None,
        log_sink: LogSink | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.settings = settings
        self.pm = pm
        self.task_types = collect_task_types(pm)
        self.runner_id = settings.runner_id
        self.instance = instance_name(settings.instance, settings.database_url)
        # Opens the secrets a task lists, just before its run (core/sealing.py).
        self.keyring = Keyring.parse(settings.secrets_keyring) if settings.secrets_keyring else None
        self._db = db
        self._redis = queue_redis
        self._engine = engine
        self._log_sink = log_sink
        self._owned: list[Any] = []
        self._stopping = asyncio.Event()
        self._shutting_down = False  # grace period over: new attempts are handed back
        self._running: dict[tuple[str, int], Stop] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self._background: set[asyncio.Task[None]] = set()

    # --- lifecycle ----------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming and shut down (grace period, then hand back). Safe to repeat."""
        self._stopping.set()

    @property
    def running(self) -> set[tuple[str, int]]:
        """(task_id, attempt) of every attempt this runner is running now."""
        return set(self._running)

    async def run(self, *, burst: bool = False) -> None:
        try:
            await self._connect()
            await reconciler.sweep(
                self.db,
                self.engine,
                runner_id=self.runner_id,
                work_dir=self.settings.work_dir,
                instance=self.instance,
                startup=True,
                secrets_dir=self.settings.secrets_dir,
            )
            await self.engine.engine_id()  # names where this runner's containers run
            await self.engine.task_runtime()  # runsc asked for and missing: do not start
            with contextlib.suppress(RedisError):  # the periodic pass tries again
                await reconciler.reconcile(
                    self.db,
                    self.redis,
                    retry_base_seconds=self.settings.retry_base_seconds,
                    retry_max_seconds=self.settings.retry_max_seconds,
                )
            self._spawn_background(self._watch_cancels())
            self._spawn_background(self._reconcile_periodically())
            log.info(
                "runner %s started (concurrency %d, labels [%s])",
                self.runner_id,
                self._concurrency,
                ", ".join(self.settings.runner_labels),
            )
            await self._dispatch(burst)
        finally:
            await self._drain()
            for task in self._background:
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
            await self._disconnect()
            log.info("runner %s stopped", self.runner_id)

    @property
    def _concurrency(self) -> int:
        return self.settings.runner_concurrency

    @property
    def db(self) -> Database:
        assert self._db is not None
        return self._db

    @property
    def redis(self) -> redis.Redis:
        assert self._redis is not None
        return self._redis

    @property
    def engine(self) -> Engine:
        assert self._engine is not None
        return self._engine

    async def _connect(self) -> None:
        s = self.settings
        if self._db is None:
            self._db = Database(s.database_url, min_size=1, max_size=self._concurrency + 4)
            self._owned.append(self._db)
        if not self._db.is_connected:
            await self._db.connect()
        if self._redis is None:
            self._redis = redis.Redis.from_url(s.queue_redis_url, health_check_interval=30)
            self._owned.append(self._redis)
        if self._log_sink is None:
            streams = redis.Redis.from_url(
                s.events_redis_url, socket_connect_timeout=1, socket_timeout=1
            )
            self._owned.append(streams)

            async def publish(
                job_id: str, task_id: str, attempt: int, lines: Sequence[logstream.LogLine]
            ) -> None:
                await logstream.publish_logs(streams, job_id, task_id, attempt, lines)

            self._log_sink = publish
        if self._engine is None:
            self._engine = Engine.from_settings(s)
            self._owned.append(self._engine)

    async def _disconnect(self) -> None:
        for owned in reversed(self._owned):
            with contextlib.suppress(Exception):
                if isinstance(owned, Database):
                    await owned.disconnect()
                elif isinstance(owned, redis.Redis):
                    await owned.aclose()
                elif isinstance(owned, Engine):
                    owned.close()
        self._owned.clear()

    # --- taking work --------------------------------------------------------------------

    async def _dispatch(self, burst: bool) -> None:
        slots = asyncio.Semaphore(self._concurrency)
        while not self._stopping.is_set():
            if not await self._until_stopped(slots.acquire()):
                return
            token = f"{self.runner_id}:{uuid.uuid4().hex[:12]}"
            try:
                got = await queue.claim(
                    self.redis,
                    lease_seconds=self.settings.lease_seconds,
                    token=token,
                    max_running_per_token=self.settings.max_running_per_token,
                    labels=self.settings.runner_labels,
                )
            except RedisError as exc:
                slots.release()
                log.warning("queue unavailable (%s); retrying", exc)
                await self._until_stopped(asyncio.sleep(ERROR_PAUSE_SECONDS))
                continue
            if isinstance(got, queue.Delivery):
                handler = asyncio.ensure_future(self._handle(got))
                self._handlers.add(handler)
                handler.add_done_callback(self._handlers.discard)
                handler.add_done_callback(lambda _: slots.release())
                continue
            slots.release()
            if burst and not self._handlers and got.next_due is None:
                # Empty as far as Redis knows; Postgres may know better (a wiped queue).
                found = await reconciler.reconcile(
                    self.db,
                    self.redis,
                    retry_base_seconds=self.settings.retry_base_seconds,
                    retry_max_seconds=self.settings.retry_max_seconds,
                )
                if found.enqueued == 0 and found.expired == 0:
                    return
                continue
            wait = IDLE_WAIT_SECONDS
            if got.next_due is not None:
                wait = min(wait, max(got.next_due - time.time(), 0.0))
            try:
                await self._until_stopped(
                    queue.wait_for_work(self.redis, wait, self.settings.runner_labels)
                )
            except RedisError as exc:
                log.warning("queue unavailable (%s); retrying", exc)
                await self._until_stopped(asyncio.sleep(ERROR_PAUSE_SECONDS))

    async def _until_stopped(self, work: Awaitable[T]) -> bool:
        """Await ``work`` unless stop() comes first (then cancel it); True if it finished."""
        job = asyncio.ensure_future(work)
        stopped = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({job, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if job.done():
            job.result()
            return True
        job.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await job
        # A semaphore acquired just as we cancelled must not leak a slot; harmless here
        # because the dispatcher stops for good.
        return False

    # --- one task -----------------------------------------------------------------------

    async def _handle(self, delivery: queue.Delivery) -> None:
        try:
            if not await lostruns.previous_runs_gone(
                self.db,
                self.engine,
                delivery.task_id,
                wait_seconds=self.settings.lost_container_wait_seconds,
            ):
                await self._hold_back(delivery)
                return
            claim = await tr.claim_attempt(
                self.db,
                delivery.task_id,
                runner_id=self.runner_id,
                lease_seconds=self.settings.lease_seconds,
                labels=self.settings.runner_labels,
            )
            if claim is None:
                await self._settle_stale(delivery)
                return
            outcome = await self._attempt(claim, delivery)
            if outcome is None:
                log.info(
                    "task %s attempt %d lost its lease; nothing written",
                    claim.task_id,
                    claim.attempt,
                )
                return
            after = await tr.finish_attempt(
                self.db,
                claim.task_id,
                claim.attempt,
                outcome,
                retry_base_seconds=self.settings.retry_base_seconds,
                retry_max_seconds=self.settings.retry_max_seconds,
            )
            if not after.applied:
                log.warning(
                    "task %s attempt %d was superseded; its result is discarded",
                    claim.task_id,
                    claim.attempt,
                )
                return
            log.info("task %s attempt %d %s", claim.task_id, claim.attempt, outcome.status)
            await self._hand_on(delivery, after.ready)
            # An instance that failed its map task for good: its running siblings stop.
            await handoff.signal_cancels(self.redis, after.cancel_running)
        except Exception:
            # The attempt's lease runs out and the reconciler retries it elsewhere; the
            # runner itself must live on to run the next task.
            log.exception("handling task %s failed", delivery.task_id)

    async def _hold_back(self, delivery: queue.Delivery) -> None:
        """Put a retry back for a moment: a lost run of it may still live on another engine."""
        ready = await task_store.queued(self.db, delivery.task_id)
        with contextlib.suppress(RedisError):
            if ready is None:
                await queue.ack(self.redis, delivery)
                return
            later = datetime.now(UTC) + timedelta(seconds=LOST_RUN_RECHECK_SECONDS)
            if ready.not_before is None or ready.not_before < later:
                ready = replace(ready, not_before=later)
            await queue.requeue(self.redis, delivery, ready)

    async def _settle_stale(self, delivery: queue.Delivery) -> None:
        """A delivery Postgres would not start: drop it, or put it back if merely early."""
        ready = await task_store.queued(self.db, delivery.task_id)
        with contextlib.suppress(RedisError):
            if ready is not None:
                await queue.requeue(self.redis, delivery, ready)
            else:
                await queue.ack(self.redis, delivery)

    async def _hand_on(self, delivery: queue.Delivery, ready: list[tr.ReadyTask]) -> None:
        """Acknowledge the delivery and enqueue what became ready (the task itself on retry)."""
        try:
            again = [r for r in ready if r.task_id == delivery.task_id]
            if again:
                await queue.requeue(self.redis, delivery, again[0])
            else:
                await queue.ack(self.redis, delivery)
            await queue.enqueue(self.redis, [r for r in ready if r.task_id != delivery.task_id])
        except RedisError as exc:
            # Committed in Postgres already: the reconciler enqueues it within a period.
            log.warning("queue unavailable after finishing task %s (%s)", delivery.task_id, exc)

    async def _attempt(self, claim: tr.Claim, delivery: queue.Delivery) -> tr.Outcome | None:
        """Run one attempt; its outcome, or None when the lease was lost."""
        spec_or_failure = self._build_spec(claim)
        if isinstance(spec_or_failure, tr.Outcome):
            return spec_or_failure
        spec = spec_or_failure
        secrets = await self._open_secrets(claim)
        if isinstance(secrets, tr.Outcome):
            return secrets
        redactions = Redactions(secrets)
        timeout = claim.timeout_s or spec.timeout_s or self.settings.default_timeout_seconds
        # The submission checked timeout_s; a task type's own time-out (which a payload
        # may set) is bound by the same operator limit here, and so is the egress
        # credential's life, which follows it.
        timeout = min(timeout, self.settings.max_task_timeout_seconds)
        proxy_url = await self._egress_proxy_url(claim, spec, timeout)
        if isinstance(proxy_url, tr.Outcome):
            return proxy_url
        key = (claim.task_id, claim.attempt)
        stop = self._running[key] = Stop()
        if self._shutting_down:
            stop.request(StopReason.SHUTDOWN)
        live = None
        if self._log_sink is not None:
            live = LivePublisher(self._log_sink, claim.job_id, claim.task_id, claim.attempt)
        beat = asyncio.ensure_future(self._heartbeat(claim, delivery, stop))

        async def on_created(container_id: str) -> None:
            try:
                recorded = await tr.record_container(
                    self.db,
                    claim.task_id,
                    claim.attempt,
                    container_id,
                    await self.engine.engine_id(),
                )
            except Exception as exc:  # only a cleanup aid: the labels find it too
                log.warning("recording container of task %s failed: %s", claim.task_id, exc)
                return
            if not recorded:
                stop.request(StopReason.LOST)

        try:
            result = await self.engine.run(
                spec,
                AttemptLabels(
                    self.instance,
                    self.runner_id,
                    claim.job_id,
                    claim.task_id,
                    claim.attempt,
                    token_id=claim.token_id,
                ),
                payload=claim.payload,
                inputs=claim.inputs,
                time_limit=float(timeout),
                stop=stop,
                on_line=live.offer if live is not None else None,
                on_created=on_created,
                secrets=secrets,
                redactions=redactions,
                place_inputs=lambda inputs_dir: self._place_inputs(claim, inputs_dir),
                keep_artifacts=lambda found: self._keep_artifacts(claim, found),
                egress_proxy_url=proxy_url,
            )
        except PayloadError as exc:
            return failed(FailureKind.PAYLOAD, f"the task type's container spec is invalid: {exc}")
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            del self._running[key]
            if live is not None:
                self._spawn_background(_quietly(live.close()))
        if stop.reason == StopReason.LOST:
            return None  # maybe only after the container exited: still, the task is not ours
        ended = outcome(
            result,
            task_type=claim.task_type,
            timeout=timeout,
            memory_bytes=spec.limits.memory_bytes,
            output_file_limit=self.settings.output_file_limit_bytes,
            task_output=lambda run: self.pm.hook.task_output(run=run),
        )
        # The streams were redacted as they came; the output JSON (from the output file
        # or the hook) and the error text are redacted here, before anything is written.
        return _redacted(ended, redactions)

    async def _place_inputs(self, claim: tr.Claim, inputs_dir: Path) -> None:
        """Each upstream task's artifacts, read-only under /homerun/inputs/<upstream>/."""
        for upstream, stored in await artifact_store.upstream(self.db, claim.task_id):
            target = workspace.place_input_file(inputs_dir, upstream, stored.path)
            with target.open("wb") as f:
                async for data in artifact_store.chunks(
                    lambda q, v: self.db.fetch_all(q, dict(v)), stored, 0, stored.size - 1
                ):
                    await self.engine.call(f.write, data)
            os.chmod(target, 0o644)

    async def _keep_artifacts(self, claim: tr.Claim, found: artifacts.Collected) -> None:
        """Store what the attempt left (fenced: a superseded attempt stores nothing)."""
        files = [
            artifact_store.StoredFile(
                path=f.path,
                content_type=artifacts.content_type(f.path),
                open=functools.partial(artifacts.open_found, f),
            )
            for f in found.files
        ]
        stored = await artifact_store.save(
            self.db, claim.task_id, claim.attempt, files, found.refused
        )
        if not stored:
            log.info(
                "task %s attempt %d superseded; artifacts dropped", claim.task_id, claim.attempt
            )

    async def _open_secrets(self, claim: tr.Claim) -> dict[str, bytes] | tr.Outcome:
        """The values of the secrets the task lists (name -> bytes), or why it cannot run."""
        if not claim.secrets:
            return {}
        if self.keyring is None:
            return failed(
                FailureKind.INFRASTRUCTURE,
                f"runner {self.runner_id} has no secrets keyring (HOMERUN_SECRETS_KEYRING_FILE)",
            )
        sealed = await secret_store.sealed_values(self.db, claim.token_id, claim.secrets)
        gone = [name for name in claim.secrets if name not in sealed]
        if gone:
            return failed(
                FailureKind.TASK,
                f"secret {gone[0]!r} no longer exists (deleted after the job was submitted)",
            )
        values: dict[str, bytes] = {}
        for name in claim.secrets:
            try:
                values[name] = self.keyring.open(claim.token_id, name, sealed[name])
            except UnknownKey as exc:
                # A runner not yet given a rotated keyring: another one may open it.
                return failed(FailureKind.INFRASTRUCTURE, str(exc))
            except TamperedSecret:
                log.error("secret %r of token %s fails its tag", name, claim.token_id)
                return failed(
                    FailureKind.TASK,
                    f"secret {name!r} cannot be opened: its stored value fails authentication",
                )
        return values

    async def _egress_proxy_url(
        self, claim: tr.Claim, spec: ContainerSpec, time_limit: float
    ) -> str | tr.Outcome | None:
        """The proxy URL an egress attempt gets, with its token's signed credential
        (core/egressgate.py): the token's own list as it is now. None: not an egress task."""
        if spec.network != NetworkPolicy.EGRESS:
            return None
        allow = await tokens.egress_allow_of(self.db, claim.token_id)
        if allow is not None and not allow:
            return failed(
                FailureKind.TASK,
                f"task {claim.task_name!r} needs network egress, which its token may no longer"
                " use (its egress allow-list is empty: homerun token egress)",
            )
        key = self.settings.egress_proxy_key
        if key is None:
            if allow is not None:
                # Unsigned, the proxy could not hold the token to its narrower list.
                return failed(
                    FailureKind.INFRASTRUCTURE,
                    f"runner {self.runner_id} has no egress proxy key"
                    f" ({env_name('egress_proxy_key')}_FILE) to hold token"
                    f" {claim.token_id} to its own egress allow-list",
                )
            return self.settings.egress_proxy_url
        # Good for the whole attempt: a pull first, then the run, then a margin.
        expires = int(
            time.time()
            + self.settings.image_pull_timeout_seconds
            + time_limit
            + EGRESS_CREDENTIAL_MARGIN_SECONDS
        )
        return egressgate.proxy_url(
            self.settings.egress_proxy_url, key.encode(), claim.token_id, allow, expires
        )

    def _build_spec(self, claim: tr.Claim) -> ContainerSpec | tr.Outcome:
        task_type = self.task_types.get(claim.task_type)
        if task_type is None:
            return failed(
                FailureKind.INFRASTRUCTURE,
                f"runner {self.runner_id} has no plugin for task type {claim.task_type!r}",
            )
        context = TaskContext(
            job_id=claim.job_id,
            task_id=claim.task_id,
            task_name=claim.task_name,
            attempt=claim.attempt,
            inputs=claim.inputs,
            allowed_images=self.settings.allowed_images,
        )
        try:
            spec = task_type.build_spec(claim.payload, context)
        except PayloadError as exc:
            return failed(FailureKind.PAYLOAD, f"payload refused: {exc.message}")
        except Exception as exc:  # a plugin bug fails its task, not the runner
            log.exception("task type %s failed to build a spec", claim.task_type)
            return failed(
                FailureKind.TASK,
                f"task type {claim.task_type!r} failed to build its container spec:"
                f" {type(exc).__name__}: {exc}",
            )
        if claim.network == NetworkPolicy.EGRESS.value:
            # The submission asked for it (and the API checked the deployment allows it).
            spec = replace(spec, network=NetworkPolicy.EGRESS)
        if spec.network == NetworkPolicy.EGRESS and not self.settings.allow_task_network:
            # Allowed when submitted, not on this runner (or not any more): no retry helps.
            return failed(
                FailureKind.TASK,
                f"task {claim.task_name!r} needs network egress, which this deployment"
                " does not allow (HOMERUN_ALLOW_TASK_NETWORK)",
            )
        spec = with_submitted_files(spec, claim)
        return with_resources(spec, claim)

    # --- while an attempt runs ----------------------------------------------------------

    async def _heartbeat(self, claim: tr.Claim, delivery: queue.Delivery, stop: Stop) -> None:
        every = self.settings.heartbeat_seconds
        while True:
            await asyncio.sleep(every)
            try:
                beat = await tr.heartbeat(
                    self.db,
                    claim.task_id,
                    claim.attempt,
                    lease_seconds=self.settings.lease_seconds,
                )
            except Exception as exc:  # keep trying; the lease decides
                log.warning("heartbeat for task %s failed: %s", claim.task_id, exc)
                continue
            if not beat.alive:
                stop.request(StopReason.LOST)
                return
            if beat.cancel_requested:
                stop.request(StopReason.CANCELLED)
                return
            with contextlib.suppress(RedisError):
                await queue.extend(self.redis, delivery, lease_seconds=self.settings.lease_seconds)

    async def _watch_cancels(self) -> None:
        """Kill cancelled attempts: pub/sub at once, cancel keys as the backup."""
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(keys.CANCEL_CHANNEL)
                    polled = 0.0
                    while True:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=CANCEL_POLL_SECONDS
                        )
                        if message is not None:
                            pair = queue.parse_cancel_message(message["data"])
                            if pair is not None:
                                self._cancel(pair)
                        if self._running and time.monotonic() - polled >= CANCEL_POLL_SECONDS:
                            polled = time.monotonic()
                            for pair in await queue.cancelled_attempts(self.redis, self._running):
                                self._cancel(pair)
            except RedisError as exc:
                log.warning("cancel channel unavailable (%s); retrying", exc)
                await asyncio.sleep(ERROR_PAUSE_SECONDS)

    def _cancel(self, pair: tuple[str, int]) -> None:
        stop = self._running.get(pair)
        if stop is not None:
            log.info("cancelling task %s attempt %d", *pair)
            stop.request(StopReason.CANCELLED)

    async def _reconcile_periodically(self) -> None:
        s = self.settings
        while True:
            await asyncio.sleep(s.reconcile_seconds)
            try:
                await reconciler.reconcile_period(
                    self.db,
                    self.redis,
                    period_seconds=s.reconcile_seconds,
                    retry_base_seconds=s.retry_base_seconds,
                    retry_max_seconds=s.retry_max_seconds,
                )
                await reconciler.sweep(
                    self.db,
                    self.engine,
                    runner_id=self.runner_id,
                    work_dir=s.work_dir,
                    instance=self.instance,
                    startup=False,
                    secrets_dir=s.secrets_dir,
                )
            except Exception as exc:  # next period tries again
                log.warning("reconciling failed: %s", exc)

    # --- shutting down ------------------------------------------------------------------

    async def _drain(self) -> None:
        """Let running attempts finish within the grace period, then hand them back."""
        if self._handlers:
            log.info(
                "waiting up to %gs for %d running tasks",
                self.settings.shutdown_grace_seconds,
                len(self._handlers),
            )
            await asyncio.wait(set(self._handlers), timeout=self.settings.shutdown_grace_seconds)
        self._shutting_down = True
        for stop in self._running.values():
            stop.request(StopReason.SHUTDOWN)
        if self._handlers:
            # Killing and reporting takes a moment; the engine bounds how long.
            _, pending = await asyncio.wait(set(self._handlers), timeout=30)
            for handler in pending:
                handler.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _spawn_background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def with_submitted_files(spec: ContainerSpec, claim: tr.Claim) -> ContainerSpec:
    """The submission's files, read-only at /homerun/files/<name> (checked base64 there)."""
    if not claim.files:
        return spec
    placed = {f"{FILES_DIR}/{name}": base64.b64decode(text) for name, text in claim.files.items()}
    return replace(spec, files={**spec.files, **placed})


def with_resources(spec: ContainerSpec, claim: tr.Claim) -> ContainerSpec:
    """The spec sized as the task asked at submission; what it did not ask, the type's."""
    limits = spec.limits
    if claim.cpus is not None:
        limits = replace(limits, cpus=float(claim.cpus))
    if claim.memory_mb is not None:
        limits = replace(limits, memory_bytes=int(claim.memory_mb) * 1024 * 1024)
    return spec if limits == spec.limits else replace(spec, limits=limits)


async def _quietly(work: Awaitable[None]) -> None:
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await work


def _redacted(ended: tr.Outcome, redactions: Redactions) -> tr.Outcome:
    if not redactions:
        return ended
    return replace(
        ended,
        stdout=redactions.text(ended.stdout),
        stderr=redactions.text(ended.stderr),
        output=redactions.json(ended.output),
        error=None if ended.error is None else redactions.text(ended.error),
    )
