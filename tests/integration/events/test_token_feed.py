"""``GET /v1/events``: every status event of the token's jobs, in token order, live,
resumable with no gap and no duplicate, through a streams Redis that restarts empty."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field, replace

import httpx
import pytest
import redis.asyncio as aioredis
from databases import Database

from core import keys
from core import transitions as tr
from core.events import EVENT_COLUMNS, render
from core.settings import Settings
from homerun import sse
from notifier.relay import Relay
from tests.conftest import RedisServer, eventually, wait_for
from tests.harness.services import ServiceProcess, Services
from tests.integration.events.harness import (
    entries,
    in_thread,
    make_token,
    notifiers,
    ok,
    run_task,
    three_task_pipeline,
)

pytestmark = pytest.mark.integration

# A read of "what the feed has now" ends at its first heartbeat: keep them frequent.
HEARTBEAT_SECONDS = 0.2

Triple = tuple[str | None, str, str]  # (id, event, data) as the client saw them


@pytest.fixture
def api(settings: Settings, services: Services) -> ServiceProcess:
    return services.api(replace(settings, sse_heartbeat_seconds=HEARTBEAT_SECONDS))


def _request(
    token: str, last_event_id: str | None, since: int | None
) -> tuple[dict[str, str], dict[str, str]]:
    headers = {"Authorization": f"Bearer {token}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    return headers, ({} if since is None else {"since": str(since)})


def read_now(
    url: str, token: str, last_event_id: str | None = None, since: int | None = None
) -> list[Triple]:
    """One connection: every event the feed has to send now, i.e. up to its first heartbeat
    (the feed sends one only after its stream and the primary both had nothing new)."""
    headers, params = _request(token, last_event_id, since)
    with httpx.stream(
        "GET", f"{url}/v1/events", headers=headers, params=params, timeout=httpx.Timeout(5)
    ) as response:
        assert response.status_code == 200, response.read()
        parser, got = sse.Parser(), list[Triple]()
        for line in response.iter_lines():
            if line.startswith(":"):
                return got
            event = parser.feed(line)
            if event is not None:
                got.append((event.id, event.event, event.data))
    raise AssertionError("the feed ended by itself")


@dataclass
class FeedFollower:
    """Follows /v1/events in a thread, reconnecting with Last-Event-ID after a dropped
    connection or a 503 (as a dashboard would), until told to stop."""

    url: str
    token: str
    events: list[Triple] = field(default_factory=list)
    reconnects: list[str] = field(default_factory=list)
    opened: threading.Event = field(default_factory=threading.Event)
    idle: bool = False  # a heartbeat came after the last event
    error: BaseException | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> FeedFollower:
        self.thread = threading.Thread(target=self._run, daemon=True, name="feed-follower")
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                last_id = self.events[-1][0] if self.events else None
                self._connect(last_id)
        except BaseException as exc:  # handed to the test thread
            self.error = exc

    def _connect(self, last_id: str | None) -> None:
        headers, _ = _request(self.token, last_id, None)
        try:
            with httpx.stream(
                "GET", f"{self.url}/v1/events", headers=headers, timeout=httpx.Timeout(5, read=60)
            ) as response:
                if response.status_code == 503:
                    self.reconnects.append("503")
                    self.stop.wait(float(response.headers["retry-after"]))
                    return
                assert response.status_code == 200, response.read()
                self.opened.set()
                parser = sse.Parser()
                for line in response.iter_lines():
                    if line.startswith(":"):
                        self.idle = True
                    event = parser.feed(line)
                    if event is not None:
                        self.idle = False
                        self.events.append((event.id, event.event, event.data))
                    if self.stop.is_set():
                        return
            self.reconnects.append("closed")
        except httpx.TransportError as exc:
            self.reconnects.append(type(exc).__name__)
            self.stop.wait(0.2)

    def wait_idle_with(self, count: int, timeout: float = 30.0) -> list[Triple]:
        def done() -> bool:
            if self.error is not None:
                raise AssertionError(f"follower failed: {self.error!r}") from self.error
            return len(self.events) >= count and self.idle

        wait_for(done, timeout, message=f"{count} events, then quiet, on the feed")
        return self.events

    def close(self) -> None:
        self.stop.set()
        assert self.thread is not None
        self.thread.join(10)
        if self.error is not None:
            raise self.error


async def token_story(db: Database, token_id: str, after: int = 0) -> list[Triple]:
    """What the feed must send after ``after``: Postgres's events of the token, in token_seq
    order, as (id, event, data)."""
    rows = await db.fetch_all(
        f"SELECT {EVENT_COLUMNS} FROM events e WHERE e.token_id = :t AND e.token_seq > :after"
        " ORDER BY e.token_seq",
        {"t": token_id, "after": after},
    )
    assert [r["token_seq"] for r in rows] == list(range(after + 1, after + len(rows) + 1))
    return [(str(r["token_seq"]), r["type"], render(r)) for r in rows]


def job_of(data: str) -> str:
    return str(json.loads(data)["job_id"])


async def run_pipeline(db: Database, job_id: str) -> None:
    for name in ("fetch", "build", "ship"):
        await run_task(db, job_id, name, outcome=ok())


async def all_relayed(db: Database) -> bool:
    left = await db.fetch_val("SELECT count(*) FROM events WHERE relayed_at IS NULL")
    return bool(left == 0)


async def test_feed_follows_concurrent_jobs_once_in_order_and_resumes_anywhere(
    db: Database, settings: Settings, api: ServiceProcess
) -> None:
    mine, theirs = await make_token(db, "mine"), await make_token(db, "theirs")
    before = await tr.create_job(db, three_task_pipeline(name="before"), token_id=mine.id)
    follower = FeedFollower(api.url, mine.plaintext).start()  # starts at the present
    await in_thread(follower.opened.wait, 10)
    async with notifiers(settings, count=3):
        created = await asyncio.gather(
            tr.create_job(db, three_task_pipeline(name="a"), token_id=mine.id),
            tr.create_job(db, three_task_pipeline(name="b"), token_id=mine.id),
            tr.create_job(db, three_task_pipeline(name="other"), token_id=theirs.id),
        )
        jobs = [c.job_id for c in created]
        # Both jobs of the token move at once, relayed by three notifiers that race.
        await asyncio.gather(*(run_pipeline(db, job_id) for job_id in jobs))
        await eventually(lambda: all_relayed(db), message="the relay")
        expected = await token_story(db, mine.id, after=2)  # "before" had 1 and 2
        got = list(await in_thread(follower.wait_idle_with, len(expected)))
    follower.close()

    # Every status event of both jobs, once, in token_seq order, ids 3..n; nothing of
    # the job before the feed opened, nothing of the other token.
    assert got == expected
    assert len(got) == 2 * 12 and not follower.reconnects
    assert {job_of(data) for _, _, data in got} == {jobs[0], jobs[1]}
    assert before.job_id not in {job_of(data) for _, _, data in got}

    # Resuming after any event gives exactly the rest.
    rests = await asyncio.gather(
        *(in_thread(read_now, api.url, mine.plaintext, event_id) for event_id, _, _ in got)
    )
    for k, rest in enumerate(rests):
        assert rest == got[k + 1 :], f"resuming after event {k} ({got[k][0]})"
    # since=0 is the token's whole story; Last-Event-ID wins over since.
    everything = await token_story(db, mine.id)
    assert await in_thread(read_now, api.url, mine.plaintext, None, 0) == everything
    assert await in_thread(read_now, api.url, mine.plaintext, None, 2) == got
    assert await in_thread(read_now, api.url, mine.plaintext, got[4][0], 0) == got[5:]
    # The other token's feed has its job only.
    other = await in_thread(read_now, api.url, theirs.plaintext, None, 0)
    assert other == await token_story(db, theirs.id)
    assert {job_of(data) for _, _, data in other} == {jobs[2]}


async def test_gap_on_the_token_stream_is_filled_from_postgres(
    db: Database, settings: Settings, services: Services, streams: aioredis.Redis
) -> None:
    """The relay of a token's later events lands first, so the token stream refuses the
    earlier ones: the feed reads them from the primary. Heartbeats are 30 s here, so the
    quiet-stream check cannot be what delivers them."""
    token = await make_token(db)
    with services.api(replace(settings, sse_heartbeat_seconds=30)) as api:
        follower = FeedFollower(api.url, token.plaintext).start()
        await in_thread(follower.opened.wait, 10)
        first = await tr.create_job(db, three_task_pipeline(name="first"), token_id=token.id)
        second = await tr.create_job(db, three_task_pipeline(name="second"), token_id=token.id)
        relay = Relay(db, streams, maxlen=100, ttl_seconds=60)
        await relay.relay_job(second.job_id)  # token_seq 3 and 4 reach the token stream
        await relay.relay_job(first.job_id)  # 1 and 2: refused there, passed by 3 and 4
        found = await entries(streams, keys.token_stream(token.id))
        assert [i for i, _ in found] == ["3-0", "4-0"]

        def four() -> bool:
            return len(follower.events) >= 4

        await in_thread(wait_for, four, 10.0, 0.02, "four events well before a heartbeat")
        assert follower.events == await token_story(db, token.id)
        assert not follower.reconnects
        # One more event wakes the follower to see that it must stop (rather than the API
        # waiting out its graceful shutdown for this open stream).
        follower.stop.set()
        await tr.cancel_job(db, second.job_id)
        await relay.relay_job(second.job_id)
        follower.close()
    jobs = [job_of(data) for _, _, data in follower.events]
    assert jobs == [first.job_id, first.job_id, second.job_id, second.job_id]


async def test_streams_redis_restarting_empty_loses_and_repeats_nothing(
    db: Database,
    settings: Settings,
    api: ServiceProcess,
    events_redis_server: RedisServer,
    streams: aioredis.Redis,
) -> None:
    token = await make_token(db)
    auth = {"Authorization": f"Bearer {token.plaintext}"}
    follower = FeedFollower(api.url, token.plaintext).start()
    await in_thread(follower.opened.wait, 10)
    try:
        async with notifiers(settings, count=2):
            a = (await tr.create_job(db, three_task_pipeline(name="a"), token_id=token.id)).job_id
            b = (await tr.create_job(db, three_task_pipeline(name="b"), token_id=token.id)).job_id
            await run_task(db, a, "fetch", outcome=ok())
            await run_task(db, b, "fetch", outcome=ok())
            await eventually(lambda: all_relayed(db), message="the relay before the outage")
            before_outage = len(await token_story(db, token.id))
            await in_thread(follower.wait_idle_with, before_outage)

            events_redis_server.stop()
            # Both jobs move on while the streams Redis is down: the events wait in Postgres.
            await run_task(db, a, "build", outcome=ok())
            await run_task(db, b, "build", outcome=ok())
            response = await in_thread(
                lambda: httpx.get(f"{api.url}/v1/events", headers=auth, timeout=5)
            )
            assert response.status_code == 503
            assert response.headers["retry-after"] == str(settings.sse_retry_after_seconds)
            await in_thread(wait_for, lambda: "503" in follower.reconnects, 15.0)
            events_redis_server.start()  # no persistence: it comes back empty

            await asyncio.gather(*(run_task(db, j, "ship", outcome=ok()) for j in (a, b)))
            await eventually(lambda: all_relayed(db), message="the relay of the backlog")
            expected = await token_story(db, token.id)
            got = list(await in_thread(follower.wait_idle_with, len(expected)))
    finally:
        follower.stop.set()
        if events_redis_server.proc is None:
            events_redis_server.start()
    follower.close()

    assert got == expected, "a gap, a duplicate or a reordering"
    assert len(got) == 2 * 12
    # The Redis that came back holds only what was relayed since, under token_seq ids.
    found = [int(i.split("-")[0]) for i, _ in await entries(streams, keys.token_stream(token.id))]
    assert found == sorted(set(found)) and found[0] > before_outage


async def test_token_feed_rejects_cursors_it_never_sent(db: Database, api: ServiceProcess) -> None:
    token = await make_token(db)
    await tr.create_job(db, three_task_pipeline(), token_id=token.id)  # token_seq 1 and 2

    def get(last_event_id: str | None, since: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token.plaintext}"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        params = {} if since is None else {"since": since}
        return httpx.get(f"{api.url}/v1/events", headers=headers, params=params, timeout=5)

    for bad in ("3", "x", "-1", "1/1-0", "1-0", str(2**63)):
        response = await in_thread(get, bad)
        assert response.status_code == 400, bad
        assert response.json()["error"]["details"][0]["loc"] == ["header", "Last-Event-ID"]
    for bad in ("3", "x", "-1"):
        response = await in_thread(get, None, bad)
        assert response.status_code == 400, bad
        assert response.json()["error"]["details"][0]["loc"] == ["query", "since"]
    # The latest id is fine (nothing after it yet), and so is any earlier one.
    assert await in_thread(read_now, api.url, token.plaintext, "2") == []
    assert [i for i, _, _ in await in_thread(read_now, api.url, token.plaintext, "0")] == [
        "1",
        "2",
    ]
