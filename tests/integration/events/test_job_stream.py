"""An SSE client follows a three-task pipeline; Last-Event-ID resumes at every point."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import httpx
import pytest
import redis.asyncio as aioredis
from databases import Database

from core import keys
from core import transitions as tr
from core.events import EVENT_COLUMNS
from core.logstream import publish_log
from core.models import AttemptStatus
from core.settings import Settings
from homerun import sse
from notifier.relay import Relay
from tests.conftest import eventually
from tests.harness.services import ServiceProcess, Services
from tests.integration.events.harness import (
    Follower,
    expected_status_events,
    finish,
    in_thread,
    make_token,
    notifiers,
    ok,
    read_all,
    read_one,
    run_task,
    three_task_pipeline,
)

pytestmark = pytest.mark.integration

TERMINAL = {"job.succeeded", "job.failed", "job.cancelled"}


class ChoppyFollower(Follower):
    """Hangs up after every single event and reconnects with its Last-Event-ID."""

    def _run(self) -> None:
        try:
            last: str | None = None
            while True:
                event = read_one(self.url, self.token, self.job_id, last)
                if event is None:
                    self.reconnects.append(f"empty stream after {last}")
                    continue
                self.events.append(event)
                last = event.id
                if event.event in TERMINAL:
                    return
        except BaseException as exc:
            self.error = exc
        finally:
            self.finished.set()


def triples(events: list[sse.Event]) -> list[tuple[str, str | None, str]]:
    return [(e.event, e.id, e.data) for e in events]


async def test_follow_pipeline_live_and_resume_at_every_event(
    db: Database, settings: Settings, api: ServiceProcess, streams: aioredis.Redis
) -> None:
    token = await make_token(db)
    async with notifiers(settings):
        created = await tr.create_job(db, three_task_pipeline(), token_id=token.id)
        job_id = created.job_id
        steady = Follower(api.url, token.plaintext, job_id).start()
        choppy = ChoppyFollower(api.url, token.plaintext, job_id).start()
        sent = 2  # job.queued, task.queued(fetch)

        def both_have(count: int) -> None:
            steady.wait_for_count(count)
            choppy.wait_for_count(count)

        both_have(sent)
        for name in ("fetch", "build", "ship"):
            claim = await run_task(db, job_id, name)
            sent += 2 if name == "fetch" else 1  # job.running comes with the first claim
            await in_thread(both_have, sent)
            # Log lines while the task "runs", after its running event reached the
            # clients, so their place in the story is not a race with the notifier.
            for i in range(2):
                await publish_log(
                    streams,
                    job_id,
                    claim.task_id,
                    claim.attempt,
                    "stdout",
                    f"{name} says {i}",
                    seq=i + 1,
                )
            sent += 2
            await in_thread(both_have, sent)
            await finish(db, claim, ok({"done": name}))
            sent += 2  # succeeded + the next task queued (or job.succeeded)
        full = await in_thread(steady.join)
        await in_thread(choppy.join)

    # The status events are exactly Postgres's, in seq order, each once.
    expected = await expected_status_events(db, job_id)
    status = [e for e in full if e.event != "task.log"]
    assert [(e.id.split("/")[0] if e.id else None, e.data) for e in status] == expected
    assert [e.event for e in status][-1] == "job.succeeded"
    assert len(expected) == 12
    # The log lines arrived in between, in order, each once, with the cursor in their id.
    logs = [e.json()["line"] for e in full if e.event == "task.log"]
    assert logs == [f"{n} says {i}" for n in ("fetch", "build", "ship") for i in range(2)]
    assert len(full) == sent == 18
    # Reconnecting after every single event, live, told the same story.
    assert triples(choppy.events) == triples(full)
    assert not steady.reconnects and not choppy.reconnects

    # After the fact: a new client gets the whole story, and resuming after any event
    # (status or log) gets exactly the rest of it.
    assert triples(await in_thread(read_all, api.url, token.plaintext, job_id)) == triples(full)
    for k, event in enumerate(full):
        rest = await in_thread(read_all, api.url, token.plaintext, job_id, event.id)
        assert triples(rest) == triples(full[k + 1 :]), f"resuming after event {k} ({event.id})"


async def test_stream_replays_from_postgres_when_redis_lost_everything(
    db: Database, settings: Settings, api: ServiceProcess, streams: aioredis.Redis
) -> None:
    """A client arriving after the Redis streams were trimmed or lost still gets it all."""
    token = await make_token(db)
    async with notifiers(settings) as [notifier]:
        created = await tr.create_job(db, three_task_pipeline(), token_id=token.id)
        for name in ("fetch", "build"):
            await run_task(db, created.job_id, name, outcome=ok())
        expected_before = await expected_status_events(db, created.job_id)

        async def relayed() -> bool:
            key = f"homerun:events:{created.job_id}"
            return bool(await streams.xlen(key) == len(expected_before))

        await eventually(relayed, message="the notifier to relay the first events")
        await streams.flushall()  # as if Redis restarted empty
        follower = Follower(api.url, token.plaintext, created.job_id).start()
        await in_thread(follower.wait_for_count, len(expected_before))
        await run_task(db, created.job_id, "ship", outcome=ok())
        events = await in_thread(follower.join)
    expected = await expected_status_events(db, created.job_id)
    assert [(e.id, e.data) for e in events] == expected
    assert notifier.relayed >= len(expected)


async def test_heartbeats_keep_an_idle_stream_open(db: Database, api: ServiceProcess) -> None:
    token = await make_token(db)
    created = await tr.create_job(db, three_task_pipeline(), token_id=token.id)
    seen: list[str] = []
    done = threading.Event()

    def read() -> None:
        headers = {"Authorization": f"Bearer {token.plaintext}"}
        with httpx.stream(
            "GET",
            f"{api.url}/v1/jobs/{created.job_id}/events",
            headers=headers,
            timeout=httpx.Timeout(5, read=10),
        ) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                seen.append(line)
                if line.startswith(":") and len([s for s in seen if s.startswith(":")]) >= 2:
                    done.set()
                    return

    await in_thread(read)
    assert done.is_set()
    # The two queued events came first, then (no notifier, nothing new) only heartbeats.
    kinds = [s for s in seen if s.startswith("event:")]
    assert kinds == ["event: job.queued", "event: task.queued"]


async def test_job_events_errors(db: Database, api: ServiceProcess) -> None:
    owner, other = await make_token(db, "owner"), await make_token(db, "other")
    created = await tr.create_job(db, three_task_pipeline(), token_id=owner.id)
    url = f"{api.url}/v1/jobs/{created.job_id}/events"

    def get(token: str | None, last_event_id: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        return httpx.get(url, headers=headers, timeout=5)

    assert (await in_thread(get, None)).status_code == 401
    response = await in_thread(get, other.plaintext)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    for bad in ("x", "3/zz", "-1", "99"):
        response = await in_thread(get, owner.plaintext, bad)
        assert response.status_code == 400, bad
        assert response.json()["error"]["details"][0]["loc"] == ["header", "Last-Event-ID"]


async def test_gap_in_the_live_stream_is_filled_from_postgres(
    db: Database, settings: Settings, services: Services, streams: aioredis.Redis
) -> None:
    """The next entry on the stream is not seq + 1: the missing events come from Postgres.

    Heartbeats are 30 s here, so the quiet-stream backstop cannot be what delivers them.
    """
    token = await make_token(db)
    created = await tr.create_job(db, three_task_pipeline(), token_id=token.id)
    with services.api(replace(settings, sse_heartbeat_seconds=30)) as api:
        follower = Follower(api.url, token.plaintext, created.job_id).start()
        await in_thread(follower.wait_for_count, 2)  # replayed from Postgres; no notifier runs
        claim = await run_task(db, created.job_id, "fetch")  # 3 job.running, 4 task.running
        rows = await db.fetch_all(
            f"SELECT {EVENT_COLUMNS}, j.token_id FROM events e JOIN jobs j ON j.id = e.job_id"
            " WHERE e.job_id = :j AND e.seq = 4",
            {"j": created.job_id},
        )
        # Only seq 4 reaches the stream, as if seq 3 had been trimmed or lost.
        relay = Relay(db, streams, maxlen=100, ttl_seconds=60)
        assert await relay._append(created.job_id, token.id, list(rows)) == 1
        started = time.monotonic()
        await in_thread(follower.wait_for_count, 4, 10.0)
        assert time.monotonic() - started < 10
        expected = await expected_status_events(db, created.job_id)
        assert [(e.id, e.data) for e in follower.events] == expected
        assert not follower.reconnects
        # The rest through the real relay: the events already on the stream are skipped.
        await tr.cancel_job(db, created.job_id)
        await finish(db, claim, tr.Outcome(AttemptStatus.CANCELLED))
        result = await relay.relay_job(created.job_id)
        expected = await expected_status_events(db, created.job_id)
        assert (result.events, result.appended) == (len(expected), len(expected) - 4)
        events = await in_thread(follower.join, 10.0)
        assert [(e.id, e.data) for e in events] == expected
        assert events[-1].event == "job.cancelled"


async def test_trimmed_stream_still_tells_the_whole_story(
    db: Database, settings: Settings, api: ServiceProcess, streams: aioredis.Redis
) -> None:
    token = await make_token(db)
    job = tr.NewJob(tasks=[tr.NewTask(f"t{i:03}", "shell", {"script": "true"}) for i in range(150)])
    async with notifiers(replace(settings, stream_maxlen=10)):
        created = await tr.create_job(db, job, token_id=token.id)

        async def relayed() -> bool:
            left = await db.fetch_val(
                "SELECT count(*) FROM events WHERE job_id = :j AND relayed_at IS NULL",
                {"j": created.job_id},
            )
            return bool(left == 0)

        await eventually(relayed, message="the relay")
    length = await streams.xlen(keys.job_stream(created.job_id))
    assert length < 151  # MAXLEN ~ trims whole nodes: bounded, not exact
    await tr.cancel_job(db, created.job_id)
    events = await in_thread(read_all, api.url, token.plaintext, created.job_id)
    expected = await expected_status_events(db, created.job_id)
    assert [(e.id, e.data) for e in events] == expected
    assert len(expected) == 1 + 150 + 150 + 1  # queued, 150 queued, 150 cancelled, cancelled
