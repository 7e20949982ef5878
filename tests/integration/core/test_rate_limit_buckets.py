"""The two homes of the token-bucket step agree: the Redis script and the local fall-back.

``core.limits`` keeps the bucket in Redis (a Lua script, Redis's clock) and, while Redis
cannot be asked, in the API process (``LocalBuckets``). A token must get the same answer
from either, so each case puts one bucket state in both and compares the verdicts.
"""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from core import keys
from core.limits import LocalBuckets, RateLimiter

pytestmark = pytest.mark.integration

RATE, BURST = 0.5, 3


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("tokens", "elapsed_ms"),
    [
        (0.0, 0),  # empty: wait 2 s
        (0.0, 1200),  # 0.6 refilled: wait 0.8 s, said as 1
        (0.5, 1100),  # 1.05: allowed
        (2.0, 10_000),  # refills to the burst only
        (0.9, 0),
    ],
)
async def test_redis_and_local_buckets_give_the_same_verdict(
    queue_redis_url: str, tokens: float, elapsed_ms: int
) -> None:
    client = aioredis.Redis.from_url(queue_redis_url)
    try:
        seconds, micros = await client.time()
        now_ms = seconds * 1000 + micros // 1000
        await client.hset(
            keys.rate_limit("t"), mapping={"tokens": str(tokens), "ts": str(now_ms - elapsed_ms)}
        )
        in_redis = await RateLimiter(client, per_second=RATE, burst=BURST).check("t")
    finally:
        await client.aclose()

    clock = Clock()
    local = LocalBuckets(per_second=RATE, burst=BURST, clock=clock)
    # Bring the local bucket to ``tokens`` at a known time, then let ``elapsed_ms`` pass.
    drained = [local.take("t") for _ in range(BURST)]
    assert all(v.allowed for v in drained)
    clock.now += tokens / RATE  # refills exactly ``tokens``
    clock.now += elapsed_ms / 1000
    assert local.take("t") == in_redis
