"""``GET /v1/events``: every status event of the token's jobs, live, resumable."""

from __future__ import annotations

import json
import threading

import httpx
import pytest
from databases import Database

from core import transitions as tr
from core.settings import Settings
from homerun import sse
from tests.conftest import wait_for
from tests.integration.events.harness import (
    ApiProcess,
    expected_status_events,
    in_thread,
    make_token,
    notifiers,
    ok,
    run_task,
    three_task_pipeline,
)

pytestmark = pytest.mark.integration


class Feed:
    """Reads /v1/events in a thread until told to stop."""

    def __init__(self, api: ApiProcess, token: str, last_event_id: str | None = None) -> None:
        self.events: list[sse.Event] = []
        self.stop = threading.Event()
        self.opened = threading.Event()
        headers = {"Authorization": f"Bearer {token}"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self.thread = threading.Thread(target=self._run, args=(api.url, headers), daemon=True)
        self.thread.start()

    def _run(self, url: str, headers: dict[str, str]) -> None:
        with httpx.stream(
            "GET", f"{url}/v1/events", headers=headers, timeout=httpx.Timeout(5, read=30)
        ) as response:
            assert response.status_code == 200
            self.opened.set()
            parser = sse.Parser()
            for line in response.iter_lines():
                event = parser.feed(line)
                if event is not None:
                    self.events.append(event)
                if self.stop.is_set():  # heartbeats every second wake us up
                    return

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)


def job_seqs(events: list[sse.Event]) -> list[tuple[str, int]]:
    return [(e.json()["job_id"], e.json()["seq"]) for e in events]


async def test_token_feed_has_all_of_its_jobs_and_nothing_else(
    db: Database, settings: Settings, api: ApiProcess
) -> None:
    mine, theirs = await make_token(db, "mine"), await make_token(db, "theirs")
    feed = Feed(api, mine.plaintext)
    await in_thread(feed.opened.wait, 10)
    async with notifiers(settings):
        jobs = [
            (await tr.create_job(db, three_task_pipeline(), token_id=t.id)).job_id
            for t in (mine, theirs, mine)
        ]
        for job_id in jobs:
            for name in ("fetch", "build", "ship"):
                await run_task(db, job_id, name, outcome=ok())
        expected = {j: await expected_status_events(db, j) for j in jobs}
        want = len(expected[jobs[0]]) + len(expected[jobs[2]])
        await in_thread(wait_for, lambda: len(feed.events) >= want, 15.0)
    feed.close()
    got = job_seqs(feed.events)
    assert len(got) == want and len(set(got)) == want
    assert {j for j, _ in got} == {jobs[0], jobs[2]}  # never another token's job
    for job_id in (jobs[0], jobs[2]):
        assert [
            json.dumps(json.loads(e.data), sort_keys=True)
            for e in feed.events
            if e.json()["job_id"] == job_id
        ] == [json.dumps(json.loads(data), sort_keys=True) for _, data in expected[job_id]]

    # Resuming after any event gives exactly the rest.
    middle = feed.events[len(feed.events) // 2]
    resumed = Feed(api, mine.plaintext, middle.id)
    await in_thread(wait_for, lambda: len(resumed.events) >= want - want // 2 - 1, 15.0)
    resumed.close()
    assert job_seqs(resumed.events) == got[want // 2 + 1 :]


async def test_token_feed_rejects_a_foreign_cursor(db: Database, api: ApiProcess) -> None:
    token = await make_token(db)
    response = await in_thread(
        lambda: httpx.get(
            f"{api.url}/v1/events",
            headers={"Authorization": f"Bearer {token.plaintext}", "Last-Event-ID": "12"},
            timeout=5,
        )
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["loc"] == ["header", "Last-Event-ID"]
