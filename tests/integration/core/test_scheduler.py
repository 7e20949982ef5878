"""The scheduler against a real Postgres, on a clock the test moves: exactly one job per tick
with several schedulers, catch-up after an outage, overlap forbid/replace, pause, trigger."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from databases import Database

from core import transitions as tr
from core.cron import Cron
from core.models import AttemptStatus
from core.scheduler import Scheduler
from core.settings import Settings
from core.store import schedules as store
from core.tokens import create_token
from core.validation import JobValidator
from wire.schedules import Catchup, Overlap

pytestmark = pytest.mark.integration

T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
EVERY_2S = "*/2 * * * * *"
BODY = {"tasks": [{"name": "a", "type": "shell", "payload": {"script": "true"}}]}


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@pytest.fixture
def scheduler_settings(settings: Settings) -> Settings:
    return replace(settings, schedule_late_seconds=0.5, schedule_catchup_max=5)


@pytest.fixture
def validator(scheduler_settings: Settings) -> JobValidator:
    return Scheduler.validator_for(scheduler_settings)


@pytest.fixture
async def queue(scheduler_settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(scheduler_settings.queue_redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def token_id(db: Database) -> str:
    token_id, _ = await create_token(db, "test")
    return token_id


@pytest.fixture
def make_scheduler(
    db: Database, queue: aioredis.Redis, validator: JobValidator, scheduler_settings: Settings
) -> Callable[..., Scheduler]:
    def make(clock: Clock, database: Database = db) -> Scheduler:
        return Scheduler(database, queue, validator, scheduler_settings, clock=clock)

    return make


async def new_schedule(
    db: Database,
    token_id: str,
    *,
    now: datetime = T0,
    cron: str = EVERY_2S,
    overlap: Overlap = Overlap.ALLOW,
    catchup: Catchup = Catchup.NONE,
    paused: bool = False,
    body: dict[str, Any] = BODY,
) -> str:
    return await store.create(
        db,
        token_id=token_id,
        name=f"s-{random.random()}",
        cron=cron,
        timezone="UTC",
        job=body,
        overlap=overlap.value,
        catchup=catchup.value,
        paused=paused,
        next_tick=Cron.parse(cron, "UTC").next_after(now),
    )


async def ticks(db: Database, schedule_id: str) -> list[dict[str, Any]]:
    rows = await db.fetch_all(
        "SELECT tick, outcome, reason, manual, job_id FROM schedule_ticks"
        " WHERE schedule_id = :s ORDER BY tick",
        {"s": schedule_id},
    )
    return [dict(r) for r in rows]


async def jobs_by_tick(db: Database, schedule_id: str) -> dict[datetime, list[str]]:
    rows = await db.fetch_all(
        "SELECT id, scheduled_for FROM jobs WHERE schedule_id = :s", {"s": schedule_id}
    )
    found: dict[datetime, list[str]] = {}
    for row in rows:
        found.setdefault(row["scheduled_for"], []).append(str(row["id"]))
    return found


async def test_several_schedulers_give_every_tick_exactly_one_job(
    db: Database, token_id: str, migrated_database_url: str, make_scheduler: Any
) -> None:
    schedule_id = await new_schedule(db, token_id)
    clock = Clock(T0)
    databases = [Database(migrated_database_url) for _ in range(4)]
    for database in databases:
        await database.connect()
    try:
        schedulers = [make_scheduler(clock, database) for database in databases]
        # Two simulated minutes, a step of 0.25 s: all four race for every tick.
        for _ in range(480):
            clock.advance(0.25)
            await asyncio.gather(*(s.run_once() for s in schedulers))
    finally:
        for database in databases:
            await database.disconnect()
    expected = [T0 + timedelta(seconds=2 * i) for i in range(1, 61)]
    recorded = await ticks(db, schedule_id)
    assert [t["tick"] for t in recorded] == expected
    assert {t["outcome"] for t in recorded} == {"created"}
    by_tick = await jobs_by_tick(db, schedule_id)
    assert sorted(by_tick) == expected and all(len(ids) == 1 for ids in by_tick.values())
    assert {str(t["job_id"]) for t in recorded} == {ids[0] for ids in by_tick.values()}
    assert sum(s.created for s in schedulers) == 60  # no tick was created twice in memory


async def test_a_scheduler_killed_before_its_commit_leaves_the_tick_due(
    db: Database, token_id: str, make_scheduler: Any, migrated_database_url: str
) -> None:
    schedule_id = await new_schedule(db, token_id)
    clock = Clock(T0 + timedelta(seconds=2.1))
    doomed = Database(migrated_database_url)
    await doomed.connect()
    raw = await doomed.connection().__aenter__()
    # Holds the schedule's row and has claimed the tick (and made its job) but never commits.
    transaction = await raw.transaction().__aenter__()
    await raw.execute("SELECT 1 FROM schedules WHERE id = :s FOR NO KEY UPDATE", {"s": schedule_id})
    await raw.execute(
        "INSERT INTO schedule_ticks (schedule_id, tick, outcome) VALUES (:s, :t, 'created')",
        {"s": schedule_id, "t": T0 + timedelta(seconds=2)},
    )
    other = make_scheduler(clock)
    assert await other.run_once() == 0  # passed over while it is held (SKIP LOCKED)
    await transaction.__aexit__(RuntimeError, RuntimeError("killed"), None)  # its rollback
    await raw.__aexit__(None, None, None)
    await doomed.disconnect()
    assert await other.run_once() == 1
    assert [len(v) for v in (await jobs_by_tick(db, schedule_id)).values()] == [1]


@pytest.mark.parametrize(
    ("catchup", "jobs"),
    [(Catchup.NONE, 0), (Catchup.LATEST, 1), (Catchup.ALL, 5)],  # all: capped at 5
)
async def test_catchup_after_a_30s_outage(
    db: Database, token_id: str, make_scheduler: Any, catchup: Catchup, jobs: int
) -> None:
    schedule_id = await new_schedule(db, token_id, catchup=catchup)
    clock = Clock(T0)
    scheduler = make_scheduler(clock)
    await scheduler.run_once()
    clock.advance(31)  # ticks T0+2 .. T0+30 were missed
    await scheduler.run_once()
    recorded = await ticks(db, schedule_id)
    assert [t["tick"] for t in recorded] == [T0 + timedelta(seconds=2 * i) for i in range(1, 16)]
    created = [t["tick"] for t in recorded if t["outcome"] == "created"]
    assert created == [t["tick"] for t in recorded][len(recorded) - jobs :]
    assert all(t["reason"].startswith("missed") for t in recorded if t["outcome"] == "skipped")
    assert sum(len(v) for v in (await jobs_by_tick(db, schedule_id)).values()) == jobs
    # Back in time: the next tick runs whatever the policy.
    clock.advance(1.2)
    await scheduler.run_once()
    assert (await ticks(db, schedule_id))[-1]["outcome"] == "created"


async def test_catchup_all_within_the_limit_runs_every_missed_tick(
    db: Database, token_id: str, make_scheduler: Any
) -> None:
    schedule_id = await new_schedule(db, token_id, catchup=Catchup.ALL)
    clock = Clock(T0)
    clock.advance(7)  # T0+2, +4, +6 missed: under the limit of 5
    await make_scheduler(clock).run_once()
    recorded = await ticks(db, schedule_id)
    assert [t["outcome"] for t in recorded] == ["created"] * 3


async def test_forbid_skips_while_the_previous_job_runs(
    db: Database, token_id: str, make_scheduler: Any
) -> None:
    schedule_id = await new_schedule(db, token_id, overlap=Overlap.FORBID)
    clock = Clock(T0)
    scheduler = make_scheduler(clock)
    clock.advance(2.1)
    await scheduler.run_once()
    ((_, [job_id]),) = (await jobs_by_tick(db, schedule_id)).items()
    clock.advance(2)
    await scheduler.run_once()
    skipped = (await ticks(db, schedule_id))[-1]
    assert skipped["outcome"] == "skipped" and skipped["job_id"] is None
    assert skipped["reason"] == f"forbid: job {job_id} has not finished"
    await tr.cancel_job(db, job_id)  # finished (cancelled): no longer in the way
    clock.advance(2)
    await scheduler.run_once()
    assert [t["outcome"] for t in await ticks(db, schedule_id)] == [
        "created",
        "skipped",
        "created",
    ]


async def test_forbid_is_not_blocked_past_a_crashed_runners_lease(
    db: Database, token_id: str, make_scheduler: Any
) -> None:
    schedule_id = await new_schedule(
        db,
        token_id,
        overlap=Overlap.FORBID,
        body={"tasks": [{"name": "a", "type": "shell", "payload": {"script": "true"}}]},
    )
    clock = Clock(T0 + timedelta(seconds=2.1))
    scheduler = make_scheduler(clock)
    await scheduler.run_once()
    ((_, [job_id]),) = (await jobs_by_tick(db, schedule_id)).items()
    task_id = await db.fetch_val("SELECT id FROM tasks WHERE job_id = :j", {"j": job_id})
    # A runner claims the task and dies: no heartbeat, no result.
    claim = await tr.claim_attempt(db, str(task_id), runner_id="dead", lease_seconds=0.2)
    assert claim is not None

    async def lease_gone() -> bool:
        return bool(
            await db.fetch_val(
                "SELECT lease_expires_at < clock_timestamp() FROM attempts WHERE task_id = :t",
                {"t": str(task_id)},
            )
        )

    deadline = asyncio.get_running_loop().time() + 5
    while not await lease_gone():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    # The reconciler's expiry hands the task to another runner, which finishes it.
    after = await tr.expire_leases(db, retry_base_seconds=0, retry_max_seconds=0)
    assert [r.task_id for r in after.ready] == [str(task_id)]
    retry = await tr.claim_attempt(db, str(task_id), runner_id="alive", lease_seconds=10)
    assert retry is not None and retry.attempt == 2
    await tr.finish_attempt(db, str(task_id), 2, tr.Outcome(AttemptStatus.SUCCEEDED))
    clock.advance(2)
    await scheduler.run_once()
    assert [t["outcome"] for t in await ticks(db, schedule_id)] == ["created", "created"]


async def test_replace_cancels_the_running_job_first(
    db: Database, token_id: str, make_scheduler: Any
) -> None:
    schedule_id = await new_schedule(db, token_id, overlap=Overlap.REPLACE)
    clock = Clock(T0 + timedelta(seconds=2.1))
    scheduler = make_scheduler(clock)
    await scheduler.run_once()
    ((_, [old]),) = (await jobs_by_tick(db, schedule_id)).items()
    task_id = str(await db.fetch_val("SELECT id FROM tasks WHERE job_id = :j", {"j": old}))
    assert await tr.claim_attempt(db, task_id, runner_id="r", lease_seconds=30) is not None
    clock.advance(2)
    done = await tr.advance_due(
        db,
        now=clock(),
        validate=scheduler.validator.validate,
        late_seconds=0.5,
        catchup_max=5,
        max_ticks=10,
    )
    assert done is not None and done.cancel_running == [(task_id, 1)]
    assert await db.fetch_val("SELECT cancel_requested FROM jobs WHERE id = :j", {"j": old})
    by_tick = await jobs_by_tick(db, schedule_id)
    assert len(by_tick) == 2 and [t["outcome"] for t in await ticks(db, schedule_id)] == [
        "created",
        "created",
    ]


async def test_a_paused_schedules_ticks_are_recorded_as_skipped(
    db: Database, token_id: str, make_scheduler: Any
) -> None:
    schedule_id = await new_schedule(db, token_id, paused=True)
    clock = Clock(T0 + timedelta(seconds=4.1))
    await make_scheduler(clock).run_once()
    assert [(t["outcome"], t["reason"]) for t in await ticks(db, schedule_id)] == [
        ("skipped", "paused"),
        ("skipped", "paused"),
    ]
    assert await jobs_by_tick(db, schedule_id) == {}


async def test_a_body_that_no_longer_validates_skips_the_tick(
    db: Database, token_id: str, make_scheduler: Any
) -> None:
    body = {"tasks": [{"name": "a", "type": "gone", "payload": {}}]}
    schedule_id = await new_schedule(db, token_id, body=body)
    await make_scheduler(Clock(T0 + timedelta(seconds=2.1))).run_once()
    (tick,) = await ticks(db, schedule_id)
    assert tick["outcome"] == "skipped" and "invalid: body.tasks.0.type" in tick["reason"]


async def test_trigger_is_a_manual_tick_with_its_job(
    db: Database, token_id: str, validator: JobValidator
) -> None:
    schedule_id = await new_schedule(db, token_id, overlap=Overlap.FORBID, paused=True)
    at = T0 + timedelta(seconds=0.5)
    result = await tr.trigger(
        db, schedule_id=schedule_id, token_id=token_id, at=at, validate=validator.validate
    )
    assert result is not None
    done, fired = result
    assert fired.job_id is not None and len(done.ready) == 1
    (tick,) = await ticks(db, schedule_id)
    assert tick["manual"] and tick["outcome"] == "created" and str(tick["job_id"]) == fired.job_id
    other, _ = await create_token(db, "other")
    assert (
        await tr.trigger(
            db, schedule_id=schedule_id, token_id=other, at=at, validate=validator.validate
        )
        is None
    )


async def test_a_schedule_postgres_refuses_does_not_hold_up_the_others(
    db: Database, token_id: str, make_scheduler: Any
) -> None:
    # A body the validator accepts but Postgres refuses (a constraint only this test has).
    await db.execute("ALTER TABLE jobs ADD CONSTRAINT poison CHECK (name <> 'poison')")
    poison = await new_schedule(
        db, token_id, now=T0 - timedelta(seconds=2), body={**BODY, "name": "poison"}
    )
    healthy = await new_schedule(db, token_id)
    scheduler = make_scheduler(Clock(T0 + timedelta(seconds=2.1)))
    # The poisoned one is due first, every time; it fails alone and is passed over.
    assert await scheduler.run_once() == 1
    assert [t["outcome"] for t in await ticks(db, healthy)] == ["created"]
    assert await ticks(db, poison) == []  # rolled back: due again once passed-over time ends
    assert list(scheduler._passed_over) == [poison]
