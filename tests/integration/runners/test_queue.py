"""The queue against a real (private) Redis: idempotence, priorities, delays, leases, cancels."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from core import keys, queue
from core.models import PRIORITY_BOUND
from core.transitions import ReadyTask

pytestmark = pytest.mark.integration


async def take(client: aioredis.Redis, lease: float = 5.0) -> str | None:
    got = await queue.claim(client, lease_seconds=lease, token=f"t{time.monotonic_ns()}")
    return got.task_id if isinstance(got, queue.Delivery) else None


async def test_enqueue_is_idempotent_per_task(qredis: aioredis.Redis) -> None:
    await queue.enqueue(qredis, [ReadyTask("a", "tok", 0), ReadyTask("a", "tok", 0)])
    await queue.enqueue(qredis, [ReadyTask("a", "tok", 5)])
    assert await take(qredis) == "a"
    # Held by a runner: the API, the runner and the reconciler may all enqueue it again.
    await queue.enqueue(qredis, [ReadyTask("a", "tok", 0)])
    assert await take(qredis) is None
    assert await queue.depth(qredis) == {"ready": 0, "delayed": 0, "inflight": 1}


async def test_higher_priority_first_then_oldest_first(qredis: aioredis.Redis) -> None:
    for task_id, priority in [("low", -1), ("old", 0), ("high", 7), ("new", 0), ("top", 400)]:
        await queue.enqueue(qredis, [ReadyTask(task_id, "tok", priority)])
        await asyncio.sleep(0.002)  # distinct enqueue milliseconds
    assert [await take(qredis) for _ in range(5)] == ["top", "high", "old", "new", "low"]


async def test_not_before_holds_a_task_back(qredis: aioredis.Redis) -> None:
    due = datetime.now(UTC) + timedelta(seconds=0.3)
    await queue.enqueue(qredis, [ReadyTask("later", "tok", 0, due), ReadyTask("now", "tok", 0)])
    assert await take(qredis) == "now"
    empty = await queue.claim(qredis, lease_seconds=5, token="x")
    assert isinstance(empty, queue.Empty) and empty.next_due is not None
    assert abs(empty.next_due - due.timestamp()) < 0.01
    # An earlier enqueue of the same task wins over the delayed one.
    await queue.enqueue(qredis, [ReadyTask("later", "tok", 0)])
    assert await take(qredis) == "later"


async def test_an_unacknowledged_delivery_comes_back_after_its_lease(
    qredis: aioredis.Redis,
) -> None:
    await queue.enqueue(qredis, [ReadyTask("a", "tok", 0)])
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
    await queue.enqueue(qredis, [ReadyTask("a", "tok", 3)])
    delivery = await queue.claim(qredis, lease_seconds=5, token="t")
    assert isinstance(delivery, queue.Delivery)
    later = datetime.now(UTC) + timedelta(seconds=60)
    assert await queue.requeue(qredis, delivery, ReadyTask("a", "tok", 3, later))
    assert await queue.depth(qredis) == {"ready": 0, "delayed": 1, "inflight": 0}
    assert await queue.queued_task_ids(qredis) == {"a"}


async def test_an_enqueue_wakes_a_waiting_runner(qredis: aioredis.Redis) -> None:
    waiter = asyncio.ensure_future(queue.wait_for_work(qredis, 10))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    started = time.monotonic()
    await queue.enqueue(qredis, [ReadyTask("a", "tok", 0)])
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


# --- fair share between tokens -----------------------------------------------------------


async def take_from(
    client: aioredis.Redis, owner: dict[str, str], *, cap: int = 0, lease: float = 5.0
) -> str | None:
    """The token whose task a claim got (``owner``: task id -> token), or None."""
    got = await queue.claim(
        client, lease_seconds=lease, token=f"t{time.monotonic_ns()}", max_running_per_token=cap
    )
    return owner[got.task_id] if isinstance(got, queue.Delivery) else None


async def test_claims_alternate_between_tokens_whatever_their_priorities(
    qredis: aioredis.Redis,
) -> None:
    # A floods first, at the highest priority; B comes later with a few low-priority tasks.
    a = [ReadyTask(f"a{i}", "token-a", PRIORITY_BOUND) for i in range(50)]
    b = [ReadyTask(f"b{i}", "token-b", -PRIORITY_BOUND) for i in range(5)]
    await queue.enqueue(qredis, a)
    await queue.enqueue(qredis, b)
    owner = {t.task_id: t.token_id for t in [*a, *b]}
    order = [await take_from(qredis, owner) for _ in range(56)]
    assert order[:10] == ["token-a", "token-b"] * 5
    assert order[10:55] == ["token-a"] * 45
    assert order[55] is None


async def test_priority_orders_tasks_within_a_token(qredis: aioredis.Redis) -> None:
    await queue.enqueue(qredis, [ReadyTask("a-low", "a", -5), ReadyTask("b-only", "b", 0)])
    await asyncio.sleep(0.002)  # distinct enqueue milliseconds
    await queue.enqueue(qredis, [ReadyTask("a-high", "a", 9), ReadyTask("a-mid", "a", 1)])
    taken = [await take(qredis) for _ in range(4)]
    assert [t for t in taken if t and t.startswith("a")] == ["a-high", "a-mid", "a-low"]
    assert taken[:2] in (["a-high", "b-only"], ["b-only", "a-high"])


async def test_a_token_that_refills_its_line_waits_behind_the_others(
    qredis: aioredis.Redis,
) -> None:
    tasks = [ReadyTask("b1", "b", 0), ReadyTask("b2", "b", 0), ReadyTask("c1", "c", 0)]
    await queue.enqueue(qredis, [ReadyTask("a1", "a", 0), *tasks])
    owner = {"a1": "a", "a2": "a", "b1": "b", "b2": "b", "c1": "c"}
    assert await take_from(qredis, owner) == "a"  # a's line is empty now
    await queue.enqueue(qredis, [ReadyTask("a2", "a", 400)])
    # a rejoins behind b and c, who were already waiting.
    assert [await take_from(qredis, owner) for _ in range(4)] == ["b", "c", "a", "b"]


async def test_a_capped_token_is_skipped_and_others_are_served(qredis: aioredis.Redis) -> None:
    a = [ReadyTask(f"a{i}", "token-a", PRIORITY_BOUND) for i in range(10)]
    b = [ReadyTask(f"b{i}", "token-b", 0) for i in range(2)]
    await queue.enqueue(qredis, [*a, *b])
    owner = {t.task_id: t.token_id for t in [*a, *b]}
    held: list[queue.Delivery] = []
    order = []
    for i in range(5):
        got = await queue.claim(qredis, lease_seconds=5, token=f"t{i}", max_running_per_token=2)
        if isinstance(got, queue.Delivery):
            held.append(got)
        order.append(owner[got.task_id] if isinstance(got, queue.Delivery) else None)
        assert (await queue.running(qredis)).get("token-a", 0) <= 2
    # A reached its cap after two claims; B was still served.
    assert order == ["token-a", "token-b", "token-a", "token-b", None]
    assert await queue.running(qredis) == {"token-a": 2, "token-b": 2}
    # An acknowledgement frees a slot of A's, and wakes a runner to use it.
    await qredis.delete(keys.QUEUE_WAKE)
    assert await queue.ack(qredis, held[0])
    assert await qredis.llen(keys.QUEUE_WAKE) == 1
    assert await take_from(qredis, owner, cap=2) == "token-a"
    assert await take_from(qredis, owner, cap=2) is None
    # Without a cap, A takes what is left.
    assert await take_from(qredis, owner) == "token-a"


async def test_the_cap_holds_for_claims_racing_from_many_runners(qredis: aioredis.Redis) -> None:
    await queue.enqueue(qredis, [ReadyTask(f"a{i}", "a", 0) for i in range(20)])
    got = await asyncio.gather(
        *(
            queue.claim(qredis, lease_seconds=5, token=f"r{i}", max_running_per_token=3)
            for i in range(20)
        )
    )
    assert sum(isinstance(g, queue.Delivery) for g in got) == 3
    assert await queue.running(qredis) == {"a": 3}


async def test_a_lost_lease_and_a_requeue_give_the_slot_back(qredis: aioredis.Redis) -> None:
    await queue.enqueue(qredis, [ReadyTask("a1", "a", 0), ReadyTask("a2", "a", 0)])
    # A lease of 0 ms runs out by the next claim: the holder is presumed dead.
    first = await queue.claim(qredis, lease_seconds=0, token="dead", max_running_per_token=1)
    assert isinstance(first, queue.Delivery)
    second = await queue.claim(qredis, lease_seconds=5, token="alive", max_running_per_token=1)
    assert isinstance(second, queue.Delivery) and second.task_id != first.task_id
    assert await queue.running(qredis) == {"a": 1}
    later = datetime.now(UTC) + timedelta(seconds=60)
    assert await queue.requeue(qredis, second, ReadyTask(second.task_id, "a", 0, later))
    assert await queue.running(qredis) == {}
    assert await queue.depth(qredis) == {"ready": 1, "delayed": 1, "inflight": 0}
    assert await queue.queued_task_ids(qredis) == {"a1", "a2"}


async def test_a_retry_comes_due_in_its_own_tokens_line(qredis: aioredis.Redis) -> None:
    due = datetime.now(UTC) + timedelta(seconds=0.3)
    await queue.enqueue(qredis, [ReadyTask("a-retry", "a", 0, due), ReadyTask("b1", "b", 0)])
    await queue.enqueue(qredis, [ReadyTask("b2", "b", 0)])
    assert await take(qredis) == "b1"
    # The back-off itself is what is under test.
    await asyncio.sleep(max(due.timestamp() - time.time(), 0) + 0.01)
    owner = {"a-retry": "a", "b2": "b"}
    assert [await take_from(qredis, owner) for _ in range(2)] == ["a", "b"]
    assert await queue.depth(qredis) == {"ready": 0, "delayed": 0, "inflight": 3}


async def test_a_wiped_queue_refills_and_old_deliveries_cannot_skew_the_counts(
    qredis: aioredis.Redis,
) -> None:
    await queue.enqueue(qredis, [ReadyTask("a1", "a", 0)])
    old = await queue.claim(qredis, lease_seconds=5, token="before", max_running_per_token=1)
    assert isinstance(old, queue.Delivery)
    await qredis.flushdb()  # a failover without persistence
    # The reconciler puts back what Postgres holds as queued (a1's attempt still runs).
    await queue.enqueue(qredis, [ReadyTask("a2", "a", 0), ReadyTask("b1", "b", 0)])
    assert await take_from(qredis, {"a2": "a", "b1": "b"}, cap=1) == "a"
    # The delivery from before the wipe is no longer anyone's: its ack changes nothing.
    assert not await queue.ack(qredis, old)
    assert not await queue.extend(qredis, old, lease_seconds=5)
    assert await queue.running(qredis) == {"a": 1}
    assert await take_from(qredis, {"a2": "a", "b1": "b"}, cap=1) == "b"
    assert await queue.running(qredis) == {"a": 1, "b": 1}
