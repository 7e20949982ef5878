"""What the events and CLI tests share: their settings, in-process notifiers, tokens, a
job driver built on ``core.transitions``, and SSE followers that use the real client.

The API they follow runs as a real process from ``tests.harness.services``."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import redis.asyncio as aioredis
from databases import Database

from core import transitions as tr
from core.models import AttemptStatus
from core.settings import Settings
from core.tokens import create_token
from homerun import sse
from homerun.client import Client, ClientConfig
from notifier.service import Notifier
from tests.conftest import wait_for


@dataclass(frozen=True)
class Token:
    id: str
    plaintext: str
    webhook_secret: str


async def make_token(db: Database, name: str = "events-test") -> Token:
    token_id, plaintext = await create_token(db, name)
    secret = await db.fetch_val(
        "SELECT webhook_secret FROM tokens WHERE id = :id", {"id": token_id}
    )
    return Token(token_id, plaintext, secret)


def tuned_for_events(settings: Settings) -> Settings:
    """Heartbeats, polls and webhook retries short enough for a test to watch them."""
    return replace(
        settings,
        notifier_poll_seconds=0.5,
        sse_heartbeat_seconds=1.0,
        sse_retry_after_seconds=1,
        webhook_allow_private=True,
        webhook_retry_base_seconds=0.05,
        webhook_retry_max_seconds=0.5,
        webhook_timeout_seconds=5.0,
    )


@contextlib.asynccontextmanager
async def notifiers(settings: Settings, count: int = 1) -> AsyncIterator[list[Notifier]]:
    """``count`` notifier replicas in this event loop, each with its own connections."""
    stop = asyncio.Event()
    stack = contextlib.AsyncExitStack()
    running: list[Notifier] = []
    tasks: list[asyncio.Task[None]] = []
    async with stack:
        for _ in range(count):
            db = Database(settings.database_url, min_size=1, max_size=6)
            await db.connect()
            stack.push_async_callback(db.disconnect)
            streams = aioredis.Redis.from_url(
                settings.events_redis_url, socket_timeout=2, socket_connect_timeout=1
            )
            stack.push_async_callback(streams.aclose)
            http = await stack.enter_async_context(httpx.AsyncClient())
            notifier = Notifier(settings, db, streams, http)
            running.append(notifier)
            tasks.append(asyncio.create_task(notifier.run(stop)))
        try:
            yield running
        finally:
            stop.set()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            assert not errors, f"a notifier crashed: {errors!r}"


# --- driving a job through its states, as a runner would ---------------------------------


async def task_ids(db: Database, job_id: str) -> dict[str, str]:
    rows = await db.fetch_all("SELECT id, name FROM tasks WHERE job_id = :j", {"j": job_id})
    return {r["name"]: str(r["id"]) for r in rows}


async def run_task(
    db: Database,
    job_id: str,
    name: str,
    *,
    outcome: tr.Outcome | None = None,
    runner_id: str = "test-runner",
) -> tr.Claim:
    """Claim a task by name (the claim writes the running events)."""
    ids = await task_ids(db, job_id)
    claim = await tr.claim_attempt(db, ids[name], runner_id=runner_id, lease_seconds=60)
    assert claim is not None, f"task {name} was not claimable"
    if outcome is not None:
        await finish(db, claim, outcome)
    return claim


async def finish(db: Database, claim: tr.Claim, outcome: tr.Outcome) -> tr.Aftermath:
    after = await tr.finish_attempt(db, claim.task_id, claim.attempt, outcome)
    assert after.applied
    return after


def ok(value: Any = None) -> tr.Outcome:
    return tr.Outcome(AttemptStatus.SUCCEEDED, exit_code=0, output=value)


def three_task_pipeline(callback_url: str | None = None, name: str = "pipeline") -> tr.NewJob:
    return tr.NewJob(
        name=name,
        callback_url=callback_url,
        tasks=[
            tr.NewTask("fetch", "shell", {"script": "echo fetch"}),
            tr.NewTask("build", "shell", {"script": "echo build"}, depends_on=["fetch"]),
            tr.NewTask("ship", "shell", {"script": "echo ship"}, depends_on=["build"]),
        ],
    )


async def expected_status_events(db: Database, job_id: str) -> list[tuple[str, str]]:
    """(seq, rendered event) of every status event in Postgres, in order."""
    from core.events import EVENT_COLUMNS, render

    rows = await db.fetch_all(
        f"SELECT {EVENT_COLUMNS} FROM events e WHERE e.job_id = :j ORDER BY e.seq", {"j": job_id}
    )
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    return [(str(r["seq"]), render(r)) for r in rows]


# --- SSE followers --------------------------------------------------------------------------


@dataclass
class Follower:
    """Follows a job in a thread with the real client (reconnects, honours 503)."""

    url: str
    token: str
    job_id: str
    events: list[sse.Event] = field(default_factory=list)
    reconnects: list[str] = field(default_factory=list)
    error: BaseException | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Follower:
        threading.Thread(target=self._run, daemon=True, name=f"follow-{self.job_id}").start()
        return self

    def _run(self) -> None:
        try:
            with Client(ClientConfig(self.url, self.token, "test")) as client:
                for event in client.follow(
                    self.job_id, give_up_after=60, on_reconnect=self.reconnects.append
                ):
                    self.events.append(event)
        except BaseException as exc:  # handed to the test thread, which re-raises it
            self.error = exc
        finally:
            self.finished.set()

    def status_events(self) -> list[sse.Event]:
        return [e for e in self.events if e.event != "task.log"]

    def wait_for_count(self, count: int, timeout: float = 15.0) -> None:
        def enough() -> bool:
            if self.error is not None:
                raise AssertionError(f"follower failed: {self.error!r}") from self.error
            return len(self.events) >= count

        wait_for(enough, timeout, message=f"{count} events on the follower")

    def join(self, timeout: float = 30.0) -> list[sse.Event]:
        assert self.finished.wait(timeout), "the follower did not finish"
        if self.error is not None:
            raise self.error
        return self.events


def read_all(
    url: str, token: str, job_id: str, last_event_id: str | None = None
) -> list[sse.Event]:
    """One connection, read to the end of the stream."""
    with Client(ClientConfig(url, token, "test")) as client:
        return list(client.events(job_id, last_event_id))


def read_one(url: str, token: str, job_id: str, last_event_id: str | None) -> sse.Event | None:
    """One connection, first event only, then hang up."""
    with Client(ClientConfig(url, token, "test")) as client:
        stream = client.events(job_id, last_event_id)
        try:
            return next(stream, None)
        finally:
            stream.close()


async def in_thread(func: Any, *args: Any) -> Any:
    return await asyncio.to_thread(func, *args)


async def entries(streams: aioredis.Redis, key: str) -> list[tuple[str, dict[str, str]]]:
    """XRANGE of a whole stream, typed (the fixture's client decodes responses)."""
    found: Any = await streams.xrange(key)
    return [(str(i), dict(f)) for i, f in found]


@contextlib.contextmanager
def webhook_receiver(
    port: int, answer: Callable[[str, dict[str, str], bytes], int]
) -> Iterator[None]:
    """A real HTTP server on 127.0.0.1:``port`` that answers every POST with the status
    ``answer(path, headers, body)`` returns; stopped on exit."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = answer(self.path, dict(self.headers.items()), body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
