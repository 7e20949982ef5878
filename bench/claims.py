"""``python -m bench.claims``: the queue's claim rate with fair share, against its own floor.

Fair share makes a claim pick a token (the least recently served one under its cap) before
it pops a task. The floor is the same claim with one token holding every task, the path a
single-tenant deployment takes, measured in the same run on the same private Redis; the
figures are claim+ack pairs per second and their ratio to the floor, printed, never
asserted. The worst case is many tokens at their cap: a claim walks past each of them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence

import redis.asyncio as redis

from core import queue
from core.transitions import ReadyTask
from tests.harness.stores import redis_server


async def _rate(url: str, tokens: int, capped: int, claims: int) -> float:
    """claim+ack pairs per second with ``tokens`` tokens ready, ``capped`` of them at cap 1."""
    client = redis.Redis.from_url(url)
    try:
        await client.flushdb()
        # The capped tokens each hold one delivery already (cap 1) and have more waiting.
        for i in range(capped):
            await queue.enqueue(
                client, [ReadyTask(f"c{i}-{n}", f"capped-{i}", 0) for n in range(2)]
            )
        for _ in range(capped):
            got = await queue.claim(
                client, lease_seconds=600, token="holder", max_running_per_token=1
            )
            assert isinstance(got, queue.Delivery)
        per_token = claims // tokens + 1
        for t in range(tokens):
            await queue.enqueue(
                client, [ReadyTask(f"t{t}-{n}", f"token-{t}", 0) for n in range(per_token)]
            )
        started = time.perf_counter()
        for n in range(claims):
            got = await queue.claim(
                client, lease_seconds=60, token=f"d{n}", max_running_per_token=1 if capped else 0
            )
            assert isinstance(got, queue.Delivery)
            await queue.ack(client, got)
        return claims / (time.perf_counter() - started)
    finally:
        await client.aclose()


async def _grouped_rate(url: str, tokens: int, elsewhere: int, claims: int) -> float:
    """claim+ack pairs per second for a runner labelled [bigdisk, ssd], with ``tokens``
    tokens' work split over its label sets (none, [bigdisk], [bigdisk, ssd]) and
    ``elsewhere`` tokens whose work is all for another group ([gpu]): it walks past them."""
    client = redis.Redis.from_url(url)
    sets: list[tuple[str, ...]] = [(), ("bigdisk",), ("bigdisk", "ssd")]
    try:
        await client.flushdb()
        for i in range(elsewhere):
            await queue.enqueue(client, [ReadyTask(f"g{i}", f"gpu-{i}", 0, runs_on=["gpu"])])
        per_token = claims // tokens + 1
        for t in range(tokens):
            await queue.enqueue(
                client,
                [
                    ReadyTask(f"t{t}-{n}", f"token-{t}", 0, runs_on=sets[n % len(sets)])
                    for n in range(per_token)
                ],
            )
        started = time.perf_counter()
        for n in range(claims):
            got = await queue.claim(
                client, lease_seconds=60, token=f"d{n}", labels=("bigdisk", "ssd")
            )
            assert isinstance(got, queue.Delivery)
            await queue.ack(client, got)
        return claims / (time.perf_counter() - started)
    finally:
        await client.aclose()


async def _measure(
    url: str,
    claims: int,
    shapes: Sequence[tuple[int, int]],
    grouped: Sequence[tuple[int, int]] = (),
) -> None:
    floor = await _rate(url, 1, 0, claims)
    print(f"floor: 1 token                     {floor:8.0f} claim+ack/s")
    for tokens, capped in shapes:
        rate = await _rate(url, tokens, capped, claims)
        label = f"{tokens} tokens ready, {capped} capped"
        print(f"       {label:<28} {rate:8.0f} claim+ack/s  ratio {rate / floor:.2f}")
    # Runner groups: lines per label set, and tokens whose work only another group takes.
    for tokens, elsewhere in grouped:
        rate = await _grouped_rate(url, tokens, elsewhere, claims)
        label = f"{tokens} tok x 3 label sets, {elsewhere} other-group"
        print(f"       {label:<28} {rate:8.0f} claim+ack/s  ratio {rate / floor:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.claims", description=__doc__)
    parser.add_argument("--claims", type=int, default=2000)
    args = parser.parse_args(argv)
    with redis_server("bench-claims") as server:
        asyncio.run(
            _measure(
                server.url,
                args.claims,
                [(10, 0), (100, 0), (1, 100), (1, 1000)],
                [(1, 0), (10, 0), (10, 100), (10, 1000)],
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
