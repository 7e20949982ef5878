"""Telling the queue Redis about committed facts, where Redis being down is not a failure.

Postgres holds the truth: a ready task the queue never heard of is enqueued by the
runner's reconciler, and a cancellation it never heard of is seen by the running task's
runner on its next heartbeat (``cancel_requested``). So both calls log and count an outage
instead of failing the request or the scheduler pass that committed the fact.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core import metrics, queue
from core.transitions import ReadyTask

__all__ = ["enqueue", "signal_cancels"]

log = logging.getLogger(__name__)


async def enqueue(client: aioredis.Redis, ready: Sequence[ReadyTask]) -> None:
    if not ready:
        return
    try:
        await queue.enqueue(client, ready)
    except (RedisError, OSError) as exc:
        # The job is committed; the runner's reconciler finds its queued tasks in Postgres.
        metrics.ENQUEUE_FAILURES.inc()
        log.warning(
            "queue Redis unavailable, %d task(s) left to the reconciler: %s", len(ready), exc
        )


async def signal_cancels(client: aioredis.Redis, running: Sequence[tuple[str, int]]) -> None:
    for task_id, attempt in running:
        try:
            await queue.signal_cancel(client, task_id, attempt)
        except (RedisError, OSError) as exc:
            # Committed in Postgres: runners see cancel_requested on their next heartbeat.
            metrics.CANCEL_SIGNAL_FAILURES.inc()
            log.warning("could not signal cancellation of task %s: %s", task_id, exc)
