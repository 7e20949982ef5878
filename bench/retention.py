"""The API's p99 while retention purges a backlog, beside its p99 without a purge.

``make bench`` runs it after the pipeline figures (``python -m bench.retention`` alone).
A private API (no runner, no notifier: the purger runs here, so the purge is the only
background work) gets ``jobs`` expired jobs written straight into Postgres and the
streams Redis. Then the same load, a mix of reads and writes from ``clients`` concurrent
clients, is measured twice in the same run: first with nothing else going on (the
baseline, ``baseline_requests`` requests), then for as long as one purge of the whole
backlog lasts. Figures are printed as a ratio, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import redis.asyncio as redis
from databases import Database

from bench.stats import percentile
from core.tokens import hash_token
from notifier.retention import Purger
from tests.harness.expired import seed_finished_jobs, stream_entries
from tests.harness.stack import Stack, private_stack

__all__ = ["Measured", "main", "measure_retention"]

JOB = {"tasks": [{"name": "a", "type": "shell", "payload": {"script": "true"}}]}


@dataclass
class Measured:
    baseline: list[float]  # seconds per request, without a purge
    during: list[float]  # seconds per request while the purge ran
    purge_seconds: float
    jobs: int
    errors: int

    def line(self) -> str:
        base, under = percentile(self.baseline, 0.99), percentile(self.during, 0.99)
        return (
            f"retention: API p99 {base * 1000:.1f} ms without a purge ({len(self.baseline)}"
            f" requests), {under * 1000:.1f} ms during a purge of {self.jobs} jobs"
            f" ({len(self.during)} requests): ratio {under / base:.2f};"
            f" the purge took {self.purge_seconds:.1f} s"
            f" ({self.jobs / self.purge_seconds:.0f} jobs/s); errors {self.errors}"
        )


@dataclass
class _Load:
    client: httpx.AsyncClient
    kept: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    async def one(self, rng: random.Random) -> None:
        pick = rng.randrange(3)
        started = time.perf_counter()
        if pick == 0:
            r = await self.client.post("/v1/jobs", json=JOB)
        elif pick == 1:
            r = await self.client.get("/v1/jobs", params={"limit": 20})
        else:
            r = await self.client.get(f"/v1/jobs/{self.kept}")
        self.latencies.append(time.perf_counter() - started)
        if r.status_code >= 400:
            self.errors += 1


async def _drive(load: _Load, clients: int, *, until: asyncio.Event | None, count: int) -> None:
    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        while (until is None and len(load.latencies) < count) or (
            until is not None and not until.is_set()
        ):
            await load.one(rng)

    await asyncio.gather(*(worker(i) for i in range(clients)))


async def _measure(stack: Stack, jobs: int, clients: int, baseline_requests: int) -> Measured:
    dsn = stack.settings.database_url
    conn = await asyncpg.connect(dsn)
    try:
        token_id = str(
            await conn.fetchval("SELECT id FROM tokens WHERE hash = $1", hash_token(stack.token))
        )
    finally:
        await conn.close()
    old = datetime.now(UTC) - timedelta(days=60)
    expired = await seed_finished_jobs(dsn, token_id, jobs, finished_at=old)
    kept = await seed_finished_jobs(dsn, token_id, 1, finished_at=old, keep=True)
    streams = redis.Redis.from_url(stack.settings.events_redis_url)
    db = Database(dsn)
    await db.connect()
    try:
        await stream_entries(dsn, streams, expired + kept)
        headers = {"Authorization": f"Bearer {stack.token}"}
        async with httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=30) as client:
            warm = _Load(client, kept[0])
            await _drive(warm, clients, until=None, count=50)
            baseline = _Load(client, kept[0])
            await _drive(baseline, clients, until=None, count=baseline_requests)

            during = _Load(client, kept[0])
            done = asyncio.Event()
            driving = asyncio.create_task(_drive(during, clients, until=done, count=0))
            started = time.perf_counter()
            try:
                purged = await Purger(db, streams, stack.settings).run_once()
            finally:
                purge_seconds = time.perf_counter() - started
                done.set()
                await driving
        return Measured(
            baseline=baseline.latencies,
            during=during.latencies,
            purge_seconds=purge_seconds,
            jobs=purged.jobs,
            errors=warm.errors + baseline.errors + during.errors,
        )
    finally:
        await db.disconnect()
        await streams.aclose()


def measure_retention(
    jobs: int = 10_000, clients: int = 8, baseline_requests: int = 1000
) -> Measured:
    # Retention in the stack's settings (the purger's), the API only: nothing else purges.
    with private_stack("bench-retention", commands=("api",), retention_seconds=7 * 86400) as stack:
        return asyncio.run(_measure(stack, jobs, clients, baseline_requests))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.retention", description=__doc__)
    parser.add_argument("--jobs", type=int, default=10_000, help="expired jobs to purge")
    parser.add_argument("--clients", type=int, default=8, help="concurrent API clients")
    parser.add_argument("--baseline-requests", type=int, default=1000)
    args = parser.parse_args(argv)
    print(measure_retention(args.jobs, args.clients, args.baseline_requests).line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
