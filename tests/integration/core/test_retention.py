"""Retention: expired jobs go with everything of theirs, while the API keeps answering.

The API is a real ``homerun api`` process under load from this test; the purger
(``notifier.retention.Purger``) runs in the test's own process so that its passes and
counters can be looked at directly. Expired jobs are written straight into Postgres and
the streams Redis (``tests.harness.expired``).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
import redis.asyncio as redis
from databases import Database

from core import keys, tokens
from core.settings import Settings
from notifier.retention import Purger
from tests.harness.expired import seed_finished_jobs, stream_entries
from tests.harness.services import Services
from tests.harness.waiting import eventually, free_port
from tests.integration.api.support import bearer, metric

pytestmark = pytest.mark.integration

DAY = 86400
JOB = {"tasks": [{"name": "a", "type": "shell", "payload": {"script": "true"}}]}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Batches of the default size, without the pause, so that the test is quick.
    return replace(settings, retention_seconds=7 * DAY, retention_pause_seconds=0.0)


@pytest.fixture
async def streams(events_redis_url: str) -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(events_redis_url, decode_responses=True)
    yield client
    await client.aclose()


def _ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


async def _count(dsn: str, query: str, *args: object) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(query, *args))
    finally:
        await conn.close()


@dataclass
class Load:
    """Reads and writes against the API until ``stop``; every answer it did not expect."""

    client: httpx.AsyncClient
    headers: dict[str, str]
    kept: str
    expired: list[str]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)

    async def _one(self, rng: random.Random) -> None:
        pick = rng.randrange(5)
        if pick == 0:
            r = await self.client.post("/v1/jobs", json=JOB, headers=self.headers)
            if r.status_code == 201:
                self.created.append(r.json()["id"])
            expected = {201}
        elif pick == 1:
            r = await self.client.get("/v1/jobs", params={"limit": 50}, headers=self.headers)
            expected = {200}
        elif pick == 2:
            r = await self.client.get(f"/v1/jobs/{self.kept}", headers=self.headers)
            expected = {200}
        elif pick == 3:
            # A job the purge is deleting right now: there, or gone; never an error.
            job_id = rng.choice(self.expired)
            r = await self.client.get(f"/v1/jobs/{job_id}", headers=self.headers)
            expected = {200, 404}
        else:
            job_id = rng.choice(self.expired)
            r = await self.client.post(f"/v1/jobs/{job_id}/cancel", headers=self.headers)
            expected = {202, 404}
        self.requests += 1
        if r.status_code not in expected:
            self.errors.append(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}")

    async def worker(self, seed: int) -> None:
        rng = random.Random(seed)
        while not self.stop.is_set():
            try:
                await self._one(rng)
            except httpx.HTTPError as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")


async def test_ten_thousand_expired_jobs_go_while_the_api_answers(
    settings: Settings, services: Services, db: Database, streams: redis.Redis
) -> None:
    dsn = settings.database_url
    token_id, plaintext = await tokens.create_token(db, "retention")
    expired = await seed_finished_jobs(dsn, token_id, 10_000, finished_at=_ago(30 * DAY))
    kept = await seed_finished_jobs(dsn, token_id, 5, finished_at=_ago(30 * DAY), keep=True)
    recent = await seed_finished_jobs(dsn, token_id, 5, finished_at=_ago(DAY))
    unfinished = await seed_finished_jobs(
        dsn, token_id, 5, finished_at=_ago(30 * DAY), status="running"
    )
    survivors = kept + recent + unfinished
    entries = await stream_entries(dsn, streams, expired[:500] + survivors)
    assert entries == 2 * 515
    # Rows of other things that point at an expired job: they stay, pointing at nothing.
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE jobs SET rerun_of = $1 WHERE id = $2", expired[0], recent[0])
        schedule_id = await conn.fetchval(
            "INSERT INTO schedules (id, token_id, name, cron, timezone, job, overlap, catchup,"
            " next_tick) VALUES (gen_random_uuid(), $1, 's', '@hourly', 'UTC', $2, 'allow',"
            " 'none', now()) RETURNING id",
            token_id,
            json.dumps(JOB),
        )
        await conn.execute(
            "INSERT INTO schedule_ticks (schedule_id, tick, outcome, job_id)"
            " VALUES ($1, now(), 'created', $2)",
            schedule_id,
            expired[1],
        )
    finally:
        await conn.close()

    api = services.api(settings)
    purger = Purger(db, streams, settings)
    deleted_before = metric("homerun_retention_jobs_deleted_total")
    events_before = metric("homerun_retention_rows_deleted_total", table="events")
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        load = Load(client, bearer(plaintext), kept[0], expired)
        workers = [asyncio.create_task(load.worker(i)) for i in range(8)]
        try:
            # Wait until the load runs, so the purge happens under it.
            await eventually(lambda: load.requests >= 20 or load.errors, within=30)
            before_purge = load.requests
            done = await purger.run_once()
            during_purge = load.requests - before_purge
        finally:
            load.stop.set()
            await asyncio.gather(*workers)

    assert load.errors == []
    assert done.jobs == 10_000 and not done.busy
    assert during_purge >= 20, "the API was hardly asked anything while the purge ran"
    assert metric("homerun_retention_jobs_deleted_total") - deleted_before == 10_000
    assert metric("homerun_retention_rows_deleted_total", table="events") - events_before == 20_000

    # The survivors: kept, recent, unfinished, and what the load created.
    left = await _count(dsn, "SELECT count(*) FROM jobs WHERE token_id = $1", token_id)
    assert left == len(survivors) + len(load.created)
    assert (
        await _count(dsn, "SELECT count(*) FROM jobs WHERE id = ANY($1::uuid[])", survivors) == 15
    )
    for table, query in {
        "tasks": "SELECT count(*) FROM tasks WHERE job_id = ANY($1::uuid[])",
        "events": "SELECT count(*) FROM events WHERE job_id = ANY($1::uuid[])",
        "attempts": "SELECT count(*) FROM attempts a JOIN tasks t ON t.id = a.task_id"
        " WHERE t.job_id = ANY($1::uuid[])",
    }.items():
        assert await _count(dsn, query, expired) == 0, table
    assert await _count(dsn, "SELECT count(*) FROM results") == 15
    assert (
        await _count(dsn, "SELECT count(*) FROM results r JOIN tasks t ON t.id = r.task_id") == 15
    )
    assert await _count(dsn, "SELECT count(*) FROM jobs WHERE rerun_of IS NOT NULL") == 0
    assert await _count(dsn, "SELECT count(*) FROM schedule_ticks WHERE job_id IS NULL") == 1

    # The streams Redis: the expired jobs' entries and keys are gone, the survivors' stay.
    token_stream = keys.token_stream(token_id)
    assert await streams.xlen(token_stream) == 2 * len(survivors)
    left_ids = {entry_id for entry_id, _ in await streams.xrange(token_stream) or []}
    seqs = await _count(dsn, "SELECT count(*) FROM events WHERE token_id = $1", token_id)
    assert len(left_ids) == 30 and seqs >= 30
    for job_id in expired[:500]:
        assert not await streams.exists(
            keys.job_stream(job_id), keys.log_stream(job_id), keys.log_seqs(job_id)
        )
    assert await streams.exists(keys.job_stream(kept[0]), keys.log_stream(kept[0])) == 2

    # A second pass has nothing left to do.
    assert (await purger.run_once()).jobs == 0


async def test_a_tokens_own_period_overrides_the_setting(
    settings: Settings, db: Database, streams: redis.Redis
) -> None:
    dsn = settings.database_url
    short, _ = await tokens.create_token(db, "short")
    default, _ = await tokens.create_token(db, "default")
    forever, _ = await tokens.create_token(db, "forever")
    assert await tokens.set_retention(db, short, tokens.parse_retention("1h"))
    assert await tokens.set_retention(db, forever, tokens.parse_retention("forever"))
    two_hours = {
        t: await seed_finished_jobs(dsn, t, 3, finished_at=_ago(7200))
        for t in (short, default, forever)
    }
    old = {
        t: await seed_finished_jobs(dsn, t, 3, finished_at=_ago(60 * DAY))
        for t in (default, forever)
    }

    done = await Purger(db, streams, settings).run_once()

    assert done.jobs == 3 + 3  # the short token's recent ones, the default token's old ones
    for token, ids in {**two_hours, **{f"old-{k}": v for k, v in old.items()}}.items():
        gone = token == short or token == f"old-{default}"
        left = await _count(dsn, "SELECT count(*) FROM jobs WHERE id = ANY($1::uuid[])", ids)
        assert left == (0 if gone else 3), token
    # Back to the setting: the forever token's old jobs expire too.
    assert await tokens.set_retention(db, forever, tokens.parse_retention("default"))
    assert (await Purger(db, streams, settings).run_once()).jobs == 3


async def test_one_notifier_purges_at_a_time(
    settings: Settings, db: Database, streams: redis.Redis
) -> None:
    dsn = settings.database_url
    token_id, _ = await tokens.create_token(db, "t")
    await seed_finished_jobs(dsn, token_id, 450, finished_at=_ago(30 * DAY))
    small = replace(settings, retention_batch=50)
    passes = await asyncio.gather(*(Purger(db, streams, small).run_once() for _ in range(4)))
    # Each batch took the purge lock: a replica that found it taken left the pass.
    assert sum(p.jobs for p in passes) <= 450
    assert any(p.busy for p in passes) or sum(p.jobs for p in passes) == 450
    left = await Purger(db, streams, small).run_once()
    assert sum(p.jobs for p in passes) + left.jobs == 450
    assert await _count(dsn, "SELECT count(*) FROM jobs") == 0


async def test_keep_is_set_at_submission_and_by_patch(
    settings: Settings, services: Services, db: Database, streams: redis.Redis
) -> None:
    token_id, plaintext = await tokens.create_token(db, "keeper")
    api = services.api(settings)
    purger = Purger(db, streams, settings)
    async with httpx.AsyncClient(base_url=api.url, headers=bearer(plaintext), timeout=10) as c:
        r = await c.post("/v1/jobs", json={**JOB, "keep": True})
        assert r.status_code == 201 and r.json()["keep"] is True
        job_id = r.json()["id"]
        assert (await c.post("/v1/jobs", json=JOB)).json()["keep"] is False
        for body, where in [
            ({"keep": "yes"}, ["body", "keep"]),
            ({}, ["body", "keep"]),
            ({"keep": True, "name": "x"}, ["body", "name"]),
            ([True], ["body"]),
        ]:
            r = await c.patch(f"/v1/jobs/{job_id}", json=body)
            assert r.status_code == 422, body
            assert r.json()["error"]["details"][0]["loc"] == where
        r = await c.patch("/v1/jobs/00000000-0000-4000-8000-000000000000", json={"keep": True})
        assert r.status_code == 404

        # Finished long ago: kept while keep holds, deleted once it no longer does.
        await db.execute(
            "UPDATE jobs SET status = 'succeeded', finished_at = :at WHERE token_id = :t",
            {"at": _ago(60 * DAY), "t": token_id},
        )
        assert (await purger.run_once()).jobs == 0  # their events are not relayed yet
        # No notifier runs here: relay the events as it would have (the purge waits for that).
        await db.execute(
            "UPDATE events SET relayed_at = now() WHERE token_id = :t", {"t": token_id}
        )
        assert (await purger.run_once()).jobs == 1  # the one submitted without keep
        assert (await c.get(f"/v1/jobs/{job_id}")).status_code == 200
        r = await c.patch(f"/v1/jobs/{job_id}", json={"keep": False})
        assert r.status_code == 200 and r.json()["keep"] is False
        assert (await purger.run_once()).jobs == 1
        assert (await c.get(f"/v1/jobs/{job_id}")).status_code == 404
        assert (await c.patch(f"/v1/jobs/{job_id}", json={"keep": True})).status_code == 404


async def test_the_notifier_purges_and_serves_its_figures(
    settings: Settings, services: Services, db: Database, streams: redis.Redis
) -> None:
    token_id, _ = await tokens.create_token(db, "notified")
    await seed_finished_jobs(settings.database_url, token_id, 250, finished_at=_ago(30 * DAY))
    port = free_port()
    services.notifier(
        replace(
            settings, notifier_metrics_port=port, retention_poll_seconds=0.2, retention_batch=100
        )
    )

    async def figures() -> str:
        async with httpx.AsyncClient(timeout=5) as client:
            return (await client.get(f"http://127.0.0.1:{port}/metrics")).text

    async def purged() -> bool:
        return "homerun_retention_jobs_deleted_total 250.0" in await figures()

    await eventually(purged, within=60, message="the notifier's purge of 250 jobs")
    assert await _count(settings.database_url, "SELECT count(*) FROM jobs") == 0
    text = await figures()
    assert 'homerun_retention_rows_deleted_total{table="tasks"} 250.0' in text
    assert "homerun_retention_last_pass_seconds" in text
