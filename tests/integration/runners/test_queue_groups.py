"""Runner groups in the queue (real Redis): tasks reach only runners with all their labels,
and fair share and the per-token cap hold across label sets."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from core import keys, queue
from core.transitions import ReadyTask

pytestmark = pytest.mark.integration

PLAIN: tuple[str, ...] = ()
BIG = ("bigdisk",)
GPU_BIG = ("bigdisk", "gpu")


async def take(
    client: aioredis.Redis, labels: tuple[str, ...], *, cap: int = 0, lease: float = 5.0
) -> queue.Delivery | None:
    got = await queue.claim(
        client, lease_seconds=lease, token="t", max_running_per_token=cap, labels=labels
    )
    return got if isinstance(got, queue.Delivery) else None


async def take_id(client: aioredis.Redis, labels: tuple[str, ...], *, cap: int = 0) -> str | None:
    got = await take(client, labels, cap=cap)
    return None if got is None else got.task_id


async def test_a_labelled_task_reaches_only_a_runner_with_all_its_labels(
    qredis: aioredis.Redis,
) -> None:
    await queue.enqueue(
        qredis,
        [
            ReadyTask("both", "tok", 0, runs_on=["gpu", "bigdisk"]),
            ReadyTask("big", "tok", 0, runs_on=["bigdisk"]),
        ],
    )
    assert await take_id(qredis, PLAIN) is None
    assert await take_id(qredis, ("gpu",)) is None
    # Order of the labels does not matter; a runner with more labels than asked qualifies.
    assert await take_id(qredis, BIG) == "big"
    assert await take_id(qredis, BIG) is None
    assert await take_id(qredis, ("gpu", "bigdisk", "ssd")) == "both"
    assert await queue.depth(qredis) == {"ready": 0, "delayed": 0, "inflight": 2}


async def test_an_unlabelled_task_is_taken_by_every_runner_and_priority_spans_lines(
    qredis: aioredis.Redis,
) -> None:
    await queue.enqueue(qredis, [ReadyTask("plain-low", "tok", -5)])
    await queue.enqueue(qredis, [ReadyTask("big-high", "tok", 5, runs_on=BIG)])
    await queue.enqueue(qredis, [ReadyTask("plain-mid", "tok", 0)])
    # A bigdisk runner takes the token's best task over all the lines it may take.
    assert [await take_id(qredis, BIG) for _ in range(3)] == ["big-high", "plain-mid", "plain-low"]


async def test_rotation_and_cap_stay_per_token_across_label_sets(qredis: aioredis.Redis) -> None:
    # Token a has work in two lines; b has one. Claims still alternate a, b, a, b.
    a = [ReadyTask(f"a{i}", "a", 0, runs_on=BIG if i % 2 else ()) for i in range(6)]
    b = [ReadyTask(f"b{i}", "b", 0) for i in range(6)]
    await queue.enqueue(qredis, [*a, *b])
    owner = {t.task_id: t.token_id for t in [*a, *b]}
    order = []
    for _ in range(6):
        got = await take(qredis, BIG, cap=2)
        order.append(None if got is None else owner[got.task_id])
    assert order == ["a", "b", "a", "b", None, None]
    # The cap counts a token's deliveries over all its lines.
    assert await queue.running(qredis) == {"a": 2, "b": 2}


async def test_a_token_whose_work_is_for_another_group_keeps_its_place(
    qredis: aioredis.Redis,
) -> None:
    await queue.enqueue(qredis, [ReadyTask("a-big", "a", 0, runs_on=BIG)])
    await queue.enqueue(qredis, [ReadyTask(f"b{i}", "b", 0) for i in range(3)])
    # Plain runners take b's work; a stays in the rotation, not dropped.
    assert await take_id(qredis, PLAIN) == "b0"
    assert await take_id(qredis, PLAIN) == "b1"
    assert await qredis.zscore(keys.queue_tokens("bigdisk"), "a") is not None
    # A's wait counts: the first bigdisk claim serves it ahead of b.
    assert await take_id(qredis, BIG) == "a-big"
    assert await take_id(qredis, BIG) == "b2"
    assert await queue.depth(qredis) == {"ready": 0, "delayed": 0, "inflight": 4}


async def test_a_retry_and_a_lost_lease_return_to_their_label_sets_line(
    qredis: aioredis.Redis,
) -> None:
    await queue.enqueue(qredis, [ReadyTask("g", "tok", 0, runs_on=GPU_BIG)])
    first = await queue.claim(qredis, lease_seconds=0, token="dead", labels=GPU_BIG)
    assert isinstance(first, queue.Delivery)
    # The lease ran out: back in the gpu+bigdisk line, still not a plain runner's.
    assert await take_id(qredis, PLAIN) is None
    second = await take(qredis, GPU_BIG)
    assert second is not None and second.task_id == "g"
    # A requeue (a retry, due now) keeps the label set the enqueue gave it.
    assert await queue.requeue(qredis, second, ReadyTask("g", "tok", 0))
    assert await take_id(qredis, BIG) is None
    third = await take(qredis, GPU_BIG)
    assert third is not None
    soon = datetime.now(UTC) + timedelta(seconds=0.2)
    assert await queue.requeue(qredis, third, ReadyTask("g", "tok", 0, soon))
    assert await queue.queued_task_ids(qredis) == {"g"}
    # Coming due (the back-off itself is under test) it lands in its own line again.
    await asyncio.sleep(0.25)
    assert await take_id(qredis, PLAIN) is None
    assert await take_id(qredis, GPU_BIG) == "g"


async def test_a_wake_up_goes_to_the_runners_that_can_take_the_work(
    qredis: aioredis.Redis,
) -> None:
    await queue.enqueue(qredis, [ReadyTask("big", "tok", 0, runs_on=BIG)])
    assert await qredis.llen(keys.queue_wake()) == 0
    assert await qredis.llen(keys.queue_wake("bigdisk")) == 1
    # A plain runner sleeps through it; a bigdisk runner (listening on its subsets) wakes.
    plain = asyncio.ensure_future(queue.wait_for_work(qredis, 0.3, PLAIN))
    woken = asyncio.ensure_future(queue.wait_for_work(qredis, 10, GPU_BIG))
    await asyncio.wait_for(woken, 5)
    await plain
    assert await qredis.llen(keys.queue_wake("bigdisk")) == 0


async def test_queued_ids_and_depth_see_every_line(qredis: aioredis.Redis) -> None:
    await queue.enqueue(
        qredis,
        [
            ReadyTask("p", "a", 0),
            ReadyTask("b", "a", 0, runs_on=BIG),
            ReadyTask("g", "b", 0, runs_on=GPU_BIG),
        ],
    )
    assert await queue.queued_task_ids(qredis) == {"p", "b", "g"}
    assert await queue.depth(qredis) == {"ready": 3, "delayed": 0, "inflight": 0}
    # Idempotent per task id in its own line too.
    assert await queue.add(qredis, [ReadyTask("g", "b", 0, runs_on=["gpu", "bigdisk"])]) == 0


async def test_the_cap_holds_for_claims_racing_from_different_groups(
    qredis: aioredis.Redis,
) -> None:
    await queue.enqueue(
        qredis,
        [ReadyTask(f"a{i}", "a", 0, runs_on=(BIG, PLAIN, GPU_BIG)[i % 3]) for i in range(30)],
    )
    got = await asyncio.gather(
        *(
            queue.claim(
                qredis,
                lease_seconds=5,
                token=f"r{i}",
                max_running_per_token=4,
                labels=(PLAIN, BIG, GPU_BIG)[i % 3],
            )
            for i in range(30)
        )
    )
    assert sum(isinstance(g, queue.Delivery) for g in got) == 4
    assert await queue.running(qredis) == {"a": 4}
