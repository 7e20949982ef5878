"""The relay: several notifiers, one copy of each event, in order; bounded, expiring streams."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest
import redis.asyncio as aioredis
from databases import Database

from core import keys
from core import transitions as tr
from core.events import EVENT_COLUMNS, render, seq_of
from core.logstream import LOG_STREAM_IDLE_TTL_SECONDS, publish_log
from core.settings import Settings
from notifier.relay import Relay
from tests.conftest import eventually
from tests.integration.events.harness import (
    entries,
    make_token,
    notifiers,
    ok,
    run_task,
    three_task_pipeline,
)

pytestmark = pytest.mark.integration


async def unrelayed(db: Database) -> int:
    return int(await db.fetch_val("SELECT count(*) FROM events WHERE relayed_at IS NULL"))


async def test_three_notifiers_relay_each_event_once_in_order(
    db: Database, settings: Settings, streams: aioredis.Redis
) -> None:
    token = await make_token(db)
    async with notifiers(settings, count=3) as running:

        async def one_job(n: int) -> str:
            created = await tr.create_job(db, three_task_pipeline(name=f"j{n}"), token_id=token.id)
            for name in ("fetch", "build", "ship"):
                await run_task(db, created.job_id, name, outcome=ok({"n": n}))
            return created.job_id

        job_ids = await asyncio.gather(*(one_job(n) for n in range(12)))

        async def drained() -> bool:
            return await unrelayed(db) == 0

        await eventually(drained, message="every event relayed")
        total = int(await db.fetch_val("SELECT count(*) FROM events"))
        assert sum(n.relayed for n in running) == total  # nobody appended anything twice

    for job_id in job_ids:
        rows = await db.fetch_all(
            f"SELECT {EVENT_COLUMNS} FROM events e WHERE e.job_id = :j ORDER BY e.seq",
            {"j": job_id},
        )
        found = await entries(streams, keys.job_stream(job_id))
        assert [i for i, _ in found] == [f"{r['seq']}-0" for r in rows]
        assert [f["event"] for _, f in found] == [render(r) for r in rows]
    # The token's numbering: 1..total, each job's events in its own order.
    by_token_seq = await db.fetch_all(
        f"SELECT {EVENT_COLUMNS} FROM events e WHERE e.token_id = :t ORDER BY e.token_seq",
        {"t": token.id},
    )
    assert [r["token_seq"] for r in by_token_seq] == list(range(1, total + 1))
    for job_id in job_ids:
        seqs = [r["seq"] for r in by_token_seq if str(r["job_id"]) == job_id]
        assert seqs == list(range(1, len(seqs) + 1))
    # The token stream holds events under their token_seq, each at most once, rising. An
    # event that reached it after a later one (another notifier, another job) is left out:
    # readers fill those gaps from Postgres.
    rendered = {f"{r['token_seq']}-0": render(r) for r in by_token_seq}
    token_entries = await entries(streams, keys.token_stream(token.id))
    ids = [seq_of(i) for i, _ in token_entries]
    assert ids == sorted(set(ids)) and token_entries
    assert all(f["event"] == rendered[i] for i, f in token_entries)


async def test_relay_after_a_crash_between_append_and_commit_adds_nothing_twice(
    db: Database, streams: aioredis.Redis
) -> None:
    token = await make_token(db)
    created = await tr.create_job(db, three_task_pipeline(), token_id=token.id)
    await run_task(db, created.job_id, "fetch", outcome=ok())
    relay = Relay(db, streams, maxlen=1000, ttl_seconds=60)
    rows = await db.fetch_all(
        f"SELECT {EVENT_COLUMNS} FROM events e WHERE e.job_id = :j ORDER BY e.seq",
        {"j": created.job_id},
    )
    # A notifier appended the first four, then died before its commit.
    assert await relay._append(created.job_id, token.id, list(rows[:4])) == 4
    assert await unrelayed(db) == len(rows)
    result = await relay.relay_job(created.job_id)
    assert (result.locked, result.events, result.appended) == (True, len(rows), len(rows) - 4)
    assert await unrelayed(db) == 0
    found = await entries(streams, keys.job_stream(created.job_id))
    assert [i for i, _ in found] == [f"{s}-0" for s in range(1, len(rows) + 1)]
    assert await streams.xlen(keys.token_stream(token.id)) == len(rows)
    assert (await relay.relay_job(created.job_id)).events == 0


async def test_a_job_held_by_another_notifier_is_skipped(
    db: Database, streams: aioredis.Redis
) -> None:
    token = await make_token(db)
    created = await tr.create_job(db, three_task_pipeline(), token_id=token.id)
    relay = Relay(db, streams, maxlen=1000, ttl_seconds=60)
    other = Database(str(db.url))
    await other.connect()
    try:
        async with other.connection() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(:ns, hashtext(:job))",
                {"ns": 0x686E, "job": created.job_id},
            )
            assert (await relay.relay_job(created.job_id)).locked is False
        assert (await relay.relay_job(created.job_id)).events == 2
    finally:
        await other.disconnect()


async def test_streams_expire_after_the_job_ends(
    db: Database, settings: Settings, streams: aioredis.Redis
) -> None:
    token = await make_token(db)
    created = await tr.create_job(db, three_task_pipeline(), token_id=token.id)
    job_id = created.job_id
    fetch = await run_task(db, job_id, "fetch")
    await publish_log(streams, job_id, fetch.task_id, 1, "stderr", "x" * 10_000, seq=1)
    entry = (await entries(streams, keys.log_stream(job_id)))[0][1]
    assert len(entry["line"]) == 4096 and entry["truncated"] == "1"
    async with notifiers(replace(settings, stream_ttl_seconds=120)):

        async def drained() -> bool:
            return await unrelayed(db) == 0

        await eventually(drained)
        assert await streams.ttl(keys.job_stream(job_id)) == -1  # running: no expiry yet
        assert 0 < await streams.ttl(keys.log_stream(job_id)) <= LOG_STREAM_IDLE_TTL_SECONDS
        await tr.finish_attempt(db, fetch.task_id, 1, ok())
        await run_task(db, job_id, "build", outcome=ok())
        await run_task(db, job_id, "ship", outcome=ok())
        await eventually(drained)
    for key in (
        keys.job_stream(job_id),
        keys.log_stream(job_id),
        keys.log_seqs(job_id),
        keys.token_stream(token.id),
    ):
        assert 0 < await streams.ttl(key) <= 120, key


async def test_token_stream_skips_an_event_a_later_one_passed(
    db: Database, streams: aioredis.Redis
) -> None:
    """Two notifiers relay two jobs of one token: the later token_seq may land first."""
    token = await make_token(db)
    first = await tr.create_job(db, three_task_pipeline(name="first"), token_id=token.id)
    second = await tr.create_job(db, three_task_pipeline(name="second"), token_id=token.id)
    relay = Relay(db, streams, maxlen=1000, ttl_seconds=60)
    assert (await relay.relay_job(second.job_id)).appended == 2  # token_seq 3, 4
    result = await relay.relay_job(first.job_id)  # token_seq 1, 2: passed by 3 and 4
    assert (result.events, result.appended) == (2, 2)
    found = await entries(streams, keys.job_stream(first.job_id))
    assert [i for i, _ in found] == ["1-0", "2-0"]  # the job's own stream has them all
    token_found = await entries(streams, keys.token_stream(token.id))
    assert [i for i, _ in token_found] == ["3-0", "4-0"]
    assert [json.loads(f["event"])["job_id"] for _, f in token_found] == [second.job_id] * 2
    assert await unrelayed(db) == 0
