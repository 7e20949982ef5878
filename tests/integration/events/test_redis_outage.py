"""The streams Redis stops for 10 s mid-job and comes back empty: nothing lost, nothing twice."""

from __future__ import annotations

import time

import httpx
import pytest
import redis.asyncio as aioredis
from databases import Database

from core import keys
from core import transitions as tr
from core.settings import Settings
from tests.conftest import RedisServer, eventually, wait_for
from tests.harness.services import ServiceProcess
from tests.integration.events.harness import (
    Follower,
    entries,
    expected_status_events,
    finish,
    in_thread,
    make_token,
    notifiers,
    ok,
    run_task,
    three_task_pipeline,
)

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 10.0  # part of the scenario, not a wait for a condition


async def test_outage_mid_job_loses_and_repeats_nothing(
    db: Database,
    settings: Settings,
    api: ServiceProcess,
    events_redis_server: RedisServer,
    streams: aioredis.Redis,
) -> None:
    token = await make_token(db)
    auth = {"Authorization": f"Bearer {token.plaintext}"}
    try:
        async with notifiers(settings, count=2):
            created = await tr.create_job(db, three_task_pipeline(), token_id=token.id)
            job_id = created.job_id
            follower = Follower(api.url, token.plaintext, job_id).start()
            await run_task(db, job_id, "fetch", outcome=ok())
            build = await run_task(db, job_id, "build")
            await in_thread(follower.wait_for_count, 7)

            events_redis_server.stop()
            stopped_at = time.monotonic()
            # The job moves on while the streams Redis is down: these events wait in Postgres.
            await finish(db, build, ok())
            ship = await run_task(db, job_id, "ship")

            # The API keeps working; the event stream says 503 with Retry-After.
            response = await in_thread(
                lambda: httpx.get(f"{api.url}/v1/jobs/{job_id}", headers=auth, timeout=5)
            )
            assert response.status_code == 200 and response.json()["status"] == "running"
            submission = {"tasks": [{"name": "t", "type": "shell", "payload": {"script": "true"}}]}
            response = await in_thread(
                lambda: httpx.post(f"{api.url}/v1/jobs", json=submission, headers=auth, timeout=5)
            )
            assert response.status_code == 201, response.text
            response = await in_thread(
                lambda: httpx.get(f"{api.url}/v1/jobs/{job_id}/events", headers=auth, timeout=5)
            )
            assert response.status_code == 503
            assert response.headers["retry-after"] == str(settings.sse_retry_after_seconds)
            assert response.json()["error"]["code"] == "unavailable"
            unrelayed = await db.fetch_val(
                "SELECT count(*) FROM events WHERE job_id = :j AND relayed_at IS NULL",
                {"j": job_id},
            )
            assert unrelayed >= 3  # build succeeded, ship queued, ship running
            await in_thread(
                wait_for, lambda: follower.reconnects, 15.0, 0.02, "the follower to notice"
            )

            await in_thread(time.sleep, max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped_at)))
            events_redis_server.start()  # no persistence: it comes back empty

            await finish(db, ship, ok())
            events = await in_thread(follower.join, 60)

            async def all_relayed() -> bool:
                left = await db.fetch_val(
                    "SELECT count(*) FROM events WHERE job_id = :j AND relayed_at IS NULL",
                    {"j": job_id},
                )
                return bool(left == 0)

            await eventually(all_relayed, message="the notifiers to relay the backlog")
    finally:
        if events_redis_server.proc is None:
            events_redis_server.start()

    expected = await expected_status_events(db, job_id)
    assert [(e.id, e.data) for e in events] == expected, "a gap, a duplicate or a reordering"
    assert events[-1].event == "job.succeeded"
    assert any("unavailable" in r or "closed" in r for r in follower.reconnects)
    # After the restart Redis held only what was relayed since: the backlog, once, in order.
    found = await entries(streams, keys.job_stream(job_id))
    seqs = [int(entry_id.split("-")[0]) for entry_id, _ in found]
    assert seqs == sorted(set(seqs)) and seqs[-1] == len(expected)
    assert seqs[0] > 7  # the events before the outage went with the old Redis
