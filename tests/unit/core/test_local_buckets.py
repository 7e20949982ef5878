"""The rate limiter's in-process buckets (``core.limits.LocalBuckets``), on a fake clock."""

from __future__ import annotations

from core.limits import LocalBuckets, Verdict


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate_with_the_wait_it_says() -> None:
    clock = Clock()
    buckets = LocalBuckets(per_second=0.5, burst=3, clock=clock)
    assert [buckets.take("a").allowed for _ in range(4)] == [True, True, True, False]
    assert buckets.take("a") == Verdict(False, 2)  # one token takes 2 s at 0.5/s
    assert buckets.take("b").allowed  # another token has its own bucket
    clock.now += 1.0
    assert buckets.take("a") == Verdict(False, 1)
    clock.now += 1.0
    assert buckets.take("a").allowed
    assert not buckets.take("a").allowed


def test_a_bucket_refills_up_to_its_burst_only() -> None:
    clock = Clock()
    buckets = LocalBuckets(per_second=10, burst=2, clock=clock)
    buckets.take("a")
    clock.now += 3600
    assert [buckets.take("a").allowed for _ in range(3)] == [True, True, False]


def test_full_buckets_are_forgotten() -> None:
    # An idle bucket refills to its burst: keeping it would only grow the dict.
    clock = Clock()
    buckets = LocalBuckets(per_second=1, burst=5, clock=clock)
    for n in range(1000):
        buckets.take(f"token-{n}")
    assert len(buckets) == 1000
    clock.now += 5.0
    buckets.take("late")
    assert len(buckets) == 1
