"""The queue against a real (private) Redis: idempotence, priorities, delays, leases, cancels."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from core import keys, queue
from core.transitions import ReadyTask

pytestmark = pytest.mark.integration


async def take(client: aioredis.Redis, lease: float = 5.0) -> str | None:
    got = await queue.claim(client, lease_seconds=lease, token=f"t{time.monotonic_ns()}")
    return got.task_id if isinstance(got, queue.Delivery) else None


async def test_enqueue_is_idempotent_per_task(qredis: aioredis.Redis) -> None:
    await queue.enqueue(qredis, [ReadyTask("a", 0), ReadyTask("a", 0)])
    await queue.enqueue(qredis, [ReadyTask("a", 5)])
    assert await take(qredis) == "a"
    # Held by a runner: the API, the runner and the reconciler may all enqueue it again.
    await queue.enqueue(qredis, [ReadyTask("a", 0)])
    assert await take(qredis) is None
    assert await queue.depth(qredis) == {"ready": 0, "delayed": 0, "inflight": 1}


async def test_higher_priority_first_then_oldest_first(qredis: aioredis.Redis) -> None:
    for task_id, priority in [("low", -1), ("old", 0), ("high", 7), ("new", 0), ("top", 400)]:
        await queue.enqueue(qredis, [ReadyTask(task_id, priority)])
        await asyncio.sleep(0.002)  # distinct enqueue milliseconds
    assert [await take(qredis) for _ in range(5)] == ["top", "high", "old", "new", "low"]


async def test_not_before_holds_a_task_back(qredis: aioredis.Redis) -> None:
    due = datetime.now(UTC) + timedelta(seconds=0.3)
    await queue.enqueue(qredis, [ReadyTask("later", 0, due), ReadyTask("now", 0)])
    assert await take(qredis) == "now"
    empty = await queue.claim(qredis, lease_seconds=5, token="x")
    assert isinstance(empty, queue.Empty) and empty.next_due is not None
    assert abs(empty.next_due - due.timestamp()) < 0.01
    # An earlier enqueue of the same task wins over the delayed one.
    await queue.enqueue(qredis, [ReadyTask("later", 0)])
    assert await take(qredis) == "later"


async def test_an_unacknowledged_delivery_comes_back_after_its_lease(
    qredis: aioredis.Redis,
) -> None:
    await queue.enqueue(qredis, [ReadyTask("a", 0)])
    first = await queue.claim(qredis, lease_seconds=0.2, token="first")
    assert isinstance(first, queue.Delivery)
    assert await take(qredis) is None
    await asyncio.sleep(0.25)  # the lease itself is what is under test
    second = await queue.claim(qredis, lease_seconds=5, token="second")
    assert isinstance(second, queue.Delivery) and second.task_id == "a"
    # The first holder woke up: it can neither extend nor drop the new holder's entry.
    assert not await queue.extend(qredis, first, lease_seconds=5)
    assert not await queue.ack(qredis, first)
    assert await queue.depth(qredis) == {"ready": 0, "delayed": 0, "inflight": 1}
    assert await queue.extend(qredis, second, lease_seconds=5)
    assert await queue.ack(qredis, second)
    assert await queue.depth(qredis) == {"ready": 0, "delayed": 0, "inflight": 0}


async def test_requeue_puts_a_retry_back_delayed(qredis: aioredis.Redis) -> None:
    await queue.enqueue(qredis, [ReadyTask("a", 3)])
    delivery = await queue.claim(qredis, lease_seconds=5, token="t")
    assert isinstance(delivery, queue.Delivery)
    later = datetime.now(UTC) + timedelta(seconds=60)
    assert await queue.requeue(qredis, delivery, ReadyTask("a", 3, later))
    assert await queue.depth(qredis) == {"ready": 0, "delayed": 1, "inflight": 0}
    assert await queue.queued_task_ids(qredis) == {"a"}


async def test_an_enqueue_wakes_a_waiting_runner(qredis: aioredis.Redis) -> None:
    waiter = asyncio.ensure_future(queue.wait_for_work(qredis, 10))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    started = time.monotonic()
    await queue.enqueue(qredis, [ReadyTask("a", 0)])
    await asyncio.wait_for(waiter, 2)
    assert time.monotonic() - started < 1


async def test_cancel_signal_reaches_subscribers_and_leaves_a_key(
    qredis: aioredis.Redis,
) -> None:
    async with qredis.pubsub() as pubsub:
        await pubsub.subscribe(keys.CANCEL_CHANNEL)
        await pubsub.get_message(timeout=1)  # the subscribe confirmation
        await queue.signal_cancel(qredis, "task-1", 2)
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
    assert message is not None
    assert queue.parse_cancel_message(message["data"]) == ("task-1", 2)
    assert await queue.cancelled_attempts(qredis, [("task-1", 2), ("task-1", 1), ("x", 2)]) == {
        ("task-1", 2)
    }
    assert queue.parse_cancel_message(b"not json") is None
