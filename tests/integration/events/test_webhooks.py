"""Webhooks against a real local HTTP receiver: signed, once, retried, recorded."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import pytest
from databases import Database

from core import transitions as tr
from core.models import AttemptStatus, FailureKind
from core.settings import Settings
from notifier.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, verify
from tests.conftest import eventually, free_port
from tests.integration.events.harness import (
    make_token,
    notifiers,
    ok,
    run_task,
    three_task_pipeline,
    webhook_receiver,
)

pytestmark = pytest.mark.integration


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Receiver:
    port: int
    fail_first: dict[str, int] = field(default_factory=dict)  # path -> failures to answer
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            left = self.fail_first.get(path, 0)
            status = 500 if left else 204
            if left:
                self.fail_first[path] = left - 1
            self.calls.append(Call(path, headers, body, status))
            return status

    def successes(self) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.status < 300]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(port=free_port())
    with webhook_receiver(state.port, state.answer):
        yield state


async def deliveries(db: Database) -> dict[str, dict[str, object]]:
    rows = await db.fetch_all("SELECT job_id, status, attempts, last_error FROM webhook_deliveries")
    return {str(r["job_id"]): dict(r._mapping) for r in rows}


async def attempt_codes(db: Database, job_id: str) -> list[int | None]:
    rows = await db.fetch_all(
        "SELECT status_code FROM webhook_attempts WHERE job_id = :j ORDER BY number", {"j": job_id}
    )
    return [r["status_code"] for r in rows]


async def run_pipeline(db: Database, job_id: str, *, fail_last: bool = False) -> None:
    await run_task(db, job_id, "fetch", outcome=ok())
    await run_task(db, job_id, "build", outcome=ok())
    last = (
        tr.Outcome(AttemptStatus.FAILED, exit_code=3, error="boom", failure_kind=FailureKind.TASK)
        if fail_last
        else ok()
    )
    ids = await db.fetch_val(
        "SELECT id FROM tasks WHERE job_id = :j AND name = 'ship'", {"j": job_id}
    )
    await db.execute("UPDATE tasks SET max_attempts = 1 WHERE id = :id", {"id": ids})
    await run_task(db, job_id, "ship", outcome=last)


async def test_one_signed_delivery_per_job_with_two_notifiers(
    db: Database, settings: Settings, receiver: Receiver
) -> None:
    token = await make_token(db)
    async with notifiers(settings, count=2) as running:
        jobs = {}
        for n in range(4):
            created = await tr.create_job(
                db, three_task_pipeline(receiver.url(f"/hook/{n}")), token_id=token.id
            )
            jobs[created.job_id] = n
            await run_pipeline(db, created.job_id, fail_last=n == 3)
        plain = await tr.create_job(db, three_task_pipeline(), token_id=token.id)
        await run_pipeline(db, plain.job_id)

        async def all_delivered() -> bool:
            found = await deliveries(db)
            return len(found) == 4 and all(d["status"] == "delivered" for d in found.values())

        await eventually(all_delivered, message="every webhook delivered")
        for notifier in running:  # nothing is left for anyone to send again
            assert await notifier.deliverer.deliver_one() is False

    calls = receiver.successes()
    assert len(calls) == len(receiver.calls) == 4
    assert sorted(c.headers[DELIVERY_HEADER] for c in calls) == sorted(jobs)
    for call in calls:
        job_id = call.headers[DELIVERY_HEADER]
        assert call.path == f"/hook/{jobs[job_id]}"
        assert verify(token.webhook_secret, call.headers[SIGNATURE_HEADER], call.body)
        assert not verify("another secret", call.headers[SIGNATURE_HEADER], call.body)
        body = json.loads(call.body)
        status = "failed" if jobs[job_id] == 3 else "succeeded"
        assert body["type"] == f"job.{status}" and body["job"]["status"] == status
        assert body["job"]["id"] == job_id and len(body["job"]["tasks"]) == 3
        assert await attempt_codes(db, job_id) == [204]
    assert plain.job_id not in await deliveries(db)


async def test_receiver_failing_three_times_gets_it_on_the_fourth(
    db: Database, settings: Settings, receiver: Receiver
) -> None:
    token = await make_token(db)
    receiver.fail_first["/flaky"] = 3
    async with notifiers(settings, count=2):
        created = await tr.create_job(
            db, three_task_pipeline(receiver.url("/flaky")), token_id=token.id
        )
        await run_pipeline(db, created.job_id)

        async def delivered() -> bool:
            found = await deliveries(db)
            return found.get(created.job_id, {}).get("status") == "delivered"

        await eventually(delivered, message="the fourth attempt")
    assert [c.status for c in receiver.calls] == [500, 500, 500, 204]
    assert [c.headers["Homerun-Delivery-Attempt"] for c in receiver.calls] == ["1", "2", "3", "4"]
    assert all(
        verify(token.webhook_secret, c.headers[SIGNATURE_HEADER], c.body) for c in receiver.calls
    )
    assert await attempt_codes(db, created.job_id) == [500, 500, 500, 204]
    assert (await deliveries(db))[created.job_id]["attempts"] == 4


async def test_gives_up_after_max_attempts(
    db: Database, settings: Settings, receiver: Receiver
) -> None:
    token = await make_token(db)
    receiver.fail_first["/down"] = 100
    async with notifiers(replace(settings, webhook_max_attempts=3)):
        created = await tr.create_job(
            db, three_task_pipeline(receiver.url("/down")), token_id=token.id
        )
        await run_pipeline(db, created.job_id)

        async def failed() -> bool:
            return (await deliveries(db)).get(created.job_id, {}).get("status") == "failed"

        await eventually(failed)
    assert await attempt_codes(db, created.job_id) == [500, 500, 500]
    assert len(receiver.calls) == 3


async def test_private_destination_is_refused_by_default(
    db: Database, settings: Settings, receiver: Receiver
) -> None:
    token = await make_token(db)
    async with notifiers(replace(settings, webhook_allow_private=False)):
        created = await tr.create_job(
            db, three_task_pipeline(receiver.url("/private")), token_id=token.id
        )
        await run_pipeline(db, created.job_id)

        async def refused() -> bool:
            return (await deliveries(db)).get(created.job_id, {}).get("status") == "refused"

        await eventually(refused)
    delivery = (await deliveries(db))[created.job_id]
    assert "non-public address (127.0.0.1: not globally routable)" in str(delivery["last_error"])
    assert receiver.calls == []
    assert await attempt_codes(db, created.job_id) == [None]


async def test_webhooks_go_out_while_the_streams_redis_is_down(
    db: Database, settings: Settings, receiver: Receiver
) -> None:
    token = await make_token(db)
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    async with notifiers(replace(settings, events_redis_url=nowhere)):
        created = await tr.create_job(
            db, three_task_pipeline(receiver.url("/no-redis")), token_id=token.id
        )
        await run_pipeline(db, created.job_id)

        async def delivered() -> bool:
            return (await deliveries(db)).get(created.job_id, {}).get("status") == "delivered"

        await eventually(delivered)
    assert len(receiver.successes()) == 1
    left = await db.fetch_val("SELECT count(*) FROM events WHERE relayed_at IS NULL")
    assert left > 0  # the events wait in Postgres for the streams Redis
