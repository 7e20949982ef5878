"""What the notifier spends per job: the webhook workers and the schedule sweep stay quiet
for jobs without a callback URL, yet every webhook still goes out at once.

Each test polls rarely (``notifier_poll_seconds`` = 60), so whatever the notifier does
within it was caused by the jobs, not by a timer; calls are counted with spies around the
real methods, against real Postgres and Redis.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from databases import Database

from core import transitions as tr
from core.settings import Settings
from core.store import webhooks as webhook_store
from notifier import webhooks
from notifier.service import WEBHOOK_WORKERS
from tests.conftest import eventually, free_port
from tests.integration.events.harness import (
    in_thread,
    make_token,
    notifiers,
    ok,
    run_task,
    three_task_pipeline,
    webhook_receiver,
)

pytestmark = pytest.mark.integration

RARELY = 60.0  # notifier_poll_seconds: longer than any of these tests
JOBS = 10
HOLD_SECONDS = 0.5  # part of the scenario: how long the receiver keeps a delivery in hand


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts calls to the Deliverer's queries and to webhooks.schedule (sweep or per job)."""
    counter: Counter[str] = Counter()

    def spy(owner: Any, name: str, key: Any) -> None:
        original = getattr(owner, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            counter[key(*args, **kwargs)] += 1
            return await original(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)

    spy(webhooks.Deliverer, "deliver_one", lambda *a, **k: "deliver_one")
    spy(webhooks.Deliverer, "next_due_in", lambda *a, **k: "next_due_in")
    # relay.py and service.py both call it through the module, so this sees every call.
    spy(webhook_store, "schedule", lambda db, job_id=None: "sweep" if job_id is None else "per_job")
    return counter


async def unrelayed(db: Database) -> int:
    return int(await db.fetch_val("SELECT count(*) FROM events WHERE relayed_at IS NULL"))


async def delivery_status(db: Database, job_id: str) -> str | None:
    status = await db.fetch_val(
        "SELECT status FROM webhook_deliveries WHERE job_id = :j", {"j": job_id}
    )
    return None if status is None else str(status)


async def run_pipeline(db: Database, job_id: str) -> None:
    for name in ("fetch", "build", "ship"):
        await run_task(db, job_id, name, outcome=ok())


async def workers_idle(calls: Counter[str]) -> None:
    """Wait for each webhook worker's first look (one claim, one due-time query)."""

    def looked() -> bool:
        return calls["deliver_one"] >= WEBHOOK_WORKERS and calls["next_due_in"] >= WEBHOOK_WORKERS

    await eventually(looked, message="the webhook workers' first look")


async def test_jobs_without_webhooks_do_not_wake_the_webhook_workers(
    db: Database, settings: Settings, calls: Counter[str]
) -> None:
    token = await make_token(db)
    async with notifiers(replace(settings, notifier_poll_seconds=RARELY)) as [notifier]:
        await workers_idle(calls)
        before = calls.copy()
        for n in range(JOBS):
            # One job at a time, each relayed before the next: many relay rounds, each of
            # which used to run the sweep and wake every webhook worker.
            created = await tr.create_job(db, three_task_pipeline(name=f"j{n}"), token_id=token.id)
            await run_pipeline(db, created.job_id)

            async def drained() -> bool:
                return await unrelayed(db) == 0

            await eventually(drained, message=f"job {n} relayed")
        during = calls - before
        total = int(await db.fetch_val("SELECT count(*) FROM events"))
        assert notifier.relayed == total

    assert during["deliver_one"] == 0 and during["next_due_in"] == 0, during
    # At most the one sweep a new LISTEN connection asks for, whenever it lands.
    assert during["sweep"] <= 1, during
    # One per terminal event: batches without one schedule nothing.
    assert during["per_job"] == JOBS, during
    assert await db.fetch_val("SELECT count(*) FROM webhook_deliveries") == 0


@dataclass
class HoldingReceiver:
    """Answers 204, but keeps the first call waiting until ``release`` is set."""

    port: int = field(default_factory=free_port)
    received: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    paths: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> int:
        self.paths.append(path)
        self.received.set()
        self.release.wait(30)
        return 204


@pytest.fixture
def receiver() -> Iterator[HoldingReceiver]:
    state = HoldingReceiver()
    with webhook_receiver(state.port, state.answer):
        try:
            yield state
        finally:
            state.release.set()  # a held call must end before the server can


async def test_a_webhook_wakes_the_workers_and_a_slow_receiver_does_not_keep_them_busy(
    db: Database, settings: Settings, calls: Counter[str], receiver: HoldingReceiver
) -> None:
    token = await make_token(db)
    async with notifiers(replace(settings, notifier_poll_seconds=RARELY)):
        await workers_idle(calls)
        created = await tr.create_job(
            db, three_task_pipeline(receiver.url("/slow")), token_id=token.id
        )
        await run_pipeline(db, created.job_id)
        # No poll is due for a minute: only the wake-up from relay_job can send it now.
        assert await in_thread(receiver.received.wait, 15), "the webhook was not sent"
        before = calls.copy()
        await asyncio.sleep(HOLD_SECONDS)  # the scenario, not a wait for a condition
        during = calls - before
        receiver.release.set()

        async def delivered() -> bool:
            return await delivery_status(db, created.job_id) == "delivered"

        await eventually(delivered, message="the held delivery to complete")

    # While one worker holds the delivery, the others looked once at most and went to
    # sleep; they used to poll it without pause for the whole HTTP call.
    looks = during["deliver_one"] + during["next_due_in"]
    assert looks <= 2 * WEBHOOK_WORKERS, during
    assert receiver.paths == ["/slow"]


async def test_a_webhook_goes_out_while_the_streams_redis_is_down_without_polling(
    db: Database, settings: Settings, calls: Counter[str], receiver: HoldingReceiver
) -> None:
    """The relay fails, so its transaction (delivery included) rolls back; the sweep that a
    failed round triggers creates the delivery and wakes the workers."""
    receiver.release.set()
    token = await make_token(db)
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    quiet = replace(settings, notifier_poll_seconds=RARELY, events_redis_url=nowhere)
    async with notifiers(quiet):
        await workers_idle(calls)
        created = await tr.create_job(
            db, three_task_pipeline(receiver.url("/no-redis")), token_id=token.id
        )
        await run_pipeline(db, created.job_id)

        async def delivered() -> bool:
            return await delivery_status(db, created.job_id) == "delivered"

        await eventually(delivered, message="the webhook, with the streams Redis down")
    assert receiver.paths == ["/no-redis"]
    assert await unrelayed(db) > 0  # the events still wait in Postgres for the streams Redis
