"""Map tasks in the state machine, against a real Postgres: expansion, the max_parallel cap
across concurrent claimers, retries of one instance alone, the aggregate in item order,
failure and cancellation."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from databases import Database

from core import transitions as tr
from core.models import AttemptStatus, FailureKind, JobStatus, TaskStatus
from core.tokens import create_token
from core.transitions.common import now
from plugins.tasktypes import MAP_INPUT

pytestmark = pytest.mark.integration

SHELL = {"script": "true"}


@pytest.fixture
async def token_id(db: Database) -> str:
    token_id, _ = await create_token(db, "test")
    return token_id


def ok(output: Any) -> tr.Outcome:
    return tr.Outcome(AttemptStatus.SUCCEEDED, exit_code=0, output=output)


def failed() -> tr.Outcome:
    return tr.Outcome(
        AttemptStatus.FAILED, exit_code=1, error="boom", failure_kind=FailureKind.TASK
    )


def map_job(
    *,
    items: list[Any] | None = None,
    over: bool = False,
    max_parallel: int | None = None,
    max_items: int = 10_000,
    max_attempts: int = 3,
) -> tr.NewJob:
    tasks = []
    if over:
        tasks.append(tr.NewTask("list", "shell", SHELL))
    spec = tr.MapSpec(
        over="list" if over else None,
        items=items,
        max_parallel=max_parallel,
        max_items=max_items,
    )
    tasks.append(
        tr.NewTask(
            "sq",
            "shell",
            SHELL,
            depends_on=["list"] if over else [],
            map=spec,
            max_attempts=max_attempts,
        )
    )
    tasks.append(tr.NewTask("sum", "shell", SHELL, depends_on=["sq"]))
    return tr.NewJob(name="m", tasks=tasks)


async def task_row(db: Database, job_id: str, name: str) -> Any:
    return await db.fetch_one(
        "SELECT id, status, output, error FROM tasks WHERE job_id = :j AND name = :n",
        {"j": job_id, "n": name},
    )


async def most_at_once(db: Database, job_id: str) -> int:
    """The most instance attempts running at one moment, from their start and finish."""
    rows = await db.fetch_all(
        "SELECT a.started_at, a.finished_at FROM attempts a JOIN tasks t ON t.id = a.task_id"
        " WHERE t.job_id = :j AND t.map_parent IS NOT NULL",
        {"j": job_id},
    )
    edges = sorted(
        [(r["started_at"], 1) for r in rows] + [(r["finished_at"], -1) for r in rows],
        key=lambda e: (e[0], e[1]),  # a finish before a start at the same instant
    )
    now = top = 0
    for _, step in edges:
        now += step
        top = max(top, now)
    return top


async def run_all(
    db: Database, ready: list[tr.ReadyTask], *, workers: int, fail_once: set[str]
) -> dict[str, tr.Claim]:
    """Claimers sharing one ready list, as runners share the queue; the instances named in
    ``fail_once`` fail their first attempt. Returns the last claim of each task by name."""
    pending = list(ready)
    seen: dict[str, tr.Claim] = {}
    failed_once: set[str] = set()
    wake = asyncio.Event()
    busy = 0

    async def worker(n: int) -> None:
        nonlocal busy
        while True:
            if not pending:
                if busy == 0:
                    wake.set()
                    return
                wake.clear()
                await wake.wait()
                continue
            entry = pending.pop(0)
            busy += 1
            try:
                if entry.not_before is not None:
                    # A retry's back-off (10 ms here): claiming before it is due is refused.
                    delay = (entry.not_before - now()).total_seconds()
                    await asyncio.sleep(max(0.0, delay) + 0.01)
                claim = await tr.claim_attempt(
                    db, entry.task_id, runner_id=f"r{n}", lease_seconds=30
                )
                if claim is None:
                    continue
                seen[claim.task_name] = claim
                await asyncio.sleep(0)  # let the other claimers interleave
                if claim.task_name in fail_once and claim.task_name not in failed_once:
                    failed_once.add(claim.task_name)
                    outcome = failed()
                else:
                    index = claim.inputs.get(MAP_INPUT, {}).get("index")
                    outcome = ok({"i": index} if index is not None else [1, 2, 3])
                after = await tr.finish_attempt(
                    db,
                    claim.task_id,
                    claim.attempt,
                    outcome,
                    retry_base_seconds=0.01,
                    retry_max_seconds=0.02,
                )
                pending.extend(after.ready)
            finally:
                busy -= 1
                wake.set()

    await asyncio.wait_for(asyncio.gather(*(worker(n) for n in range(workers))), 120)
    return seen


async def test_map_over_200_items_never_runs_more_than_max_parallel(
    db: Database, token_id: str
) -> None:
    created = await tr.create_job(
        db, map_job(items=list(range(200)), max_parallel=4), token_id=token_id
    )
    assert len(created.ready) == 4  # only max_parallel instances are queued at first
    seen = await run_all(db, created.ready, workers=8, fail_once={"sq[17]"})
    job = await db.fetch_one("SELECT status FROM jobs WHERE id = :j", {"j": created.job_id})
    assert job is not None and job["status"] == JobStatus.SUCCEEDED.value
    assert await most_at_once(db, created.job_id) == 4
    # The aggregator saw all 200 outputs, in item order.
    assert seen["sum"].inputs["sq"] == [{"i": i} for i in range(200)]
    # Each instance saw its own item and index.
    assert seen["sq[5]"].inputs[MAP_INPUT] == {"index": 5, "item": 5}
    # The failing item was retried alone: it alone has two attempts.
    counts = await db.fetch_all(
        "SELECT name, attempts FROM tasks WHERE job_id = :j AND map_parent IS NOT NULL"
        " AND attempts <> 1",
        {"j": created.job_id},
    )
    assert [(r["name"], r["attempts"]) for r in counts] == [("sq[17]", 2)]
    # One task.mapped event, no per-instance queued events.
    types = await db.fetch_all(
        "SELECT type, count(*) AS n FROM events WHERE job_id = :j GROUP BY type",
        {"j": created.job_id},
    )
    by_type = {r["type"]: r["n"] for r in types}
    assert by_type["task.mapped"] == 1 and by_type["task.queued"] == 1  # sum's
    assert by_type["task.retrying"] == 1


async def test_map_over_an_upstream_output(db: Database, token_id: str) -> None:
    created = await tr.create_job(db, map_job(over=True), token_id=token_id)
    seen = await run_all(db, created.ready, workers=3, fail_once=set())
    assert seen["sq[2]"].inputs[MAP_INPUT] == {"index": 2, "item": 3}
    assert seen["sq[0]"].inputs["list"] == [1, 2, 3]  # the map task's upstream, too
    assert seen["sum"].inputs == {"sq": [{"i": 0}, {"i": 1}, {"i": 2}]}


@pytest.mark.parametrize(
    ("output", "max_items", "reason"),
    [
        ({"not": "a list"}, 10, "is not a list (got object)"),
        (None, 10, "is not a list (got no output)"),
        (list(range(11)), 10, "has 11 items; a map runs at most 10"),
    ],
)
async def test_an_upstream_list_that_is_no_list_or_too_long_fails_the_map(
    db: Database, token_id: str, output: Any, max_items: int, reason: str
) -> None:
    created = await tr.create_job(db, map_job(over=True, max_items=max_items), token_id=token_id)
    claim = await tr.claim_attempt(db, created.ready[0].task_id, runner_id="r", lease_seconds=9)
    assert claim is not None
    after = await tr.finish_attempt(db, claim.task_id, 1, ok(output))
    assert after.ready == [] and after.job_status == JobStatus.FAILED
    sq = await task_row(db, created.job_id, "sq")
    assert sq["status"] == TaskStatus.FAILED.value and reason in sq["error"]
    total = await db.fetch_val(
        "SELECT count(*) FROM tasks WHERE job_id = :j", {"j": created.job_id}
    )
    assert total == 3  # no instance was made
    assert (await task_row(db, created.job_id, "sum"))["status"] == TaskStatus.CANCELLED.value
    event = await db.fetch_one(
        "SELECT data FROM events WHERE job_id = :j AND type = 'task.failed'",
        {"j": created.job_id},
    )
    assert event is not None and json.loads(event["data"])["failure_kind"] == "map"


async def test_an_empty_list_succeeds_at_once_with_an_empty_output(
    db: Database, token_id: str
) -> None:
    created = await tr.create_job(db, map_job(items=[]), token_id=token_id)
    assert len(created.ready) == 1  # "sum", straight away
    sq = await task_row(db, created.job_id, "sq")
    assert sq["status"] == TaskStatus.SUCCEEDED.value and json.loads(sq["output"]) == []


async def test_an_instance_failing_for_good_fails_the_map_and_cancels_the_rest(
    db: Database, token_id: str
) -> None:
    created = await tr.create_job(
        db, map_job(items=list(range(10)), max_parallel=2, max_attempts=1), token_id=token_id
    )
    first, second = created.ready
    a = await tr.claim_attempt(db, first.task_id, runner_id="r", lease_seconds=9)
    b = await tr.claim_attempt(db, second.task_id, runner_id="r", lease_seconds=9)
    assert a is not None and b is not None
    after = await tr.finish_attempt(db, a.task_id, 1, failed())
    assert after.ready == [] and after.job_status is None  # b still runs
    # ... but is to stop: signalled now, and told so by its next heartbeat too.
    assert after.cancel_running == [(b.task_id, 1)]
    beat = await tr.heartbeat(db, b.task_id, 1, lease_seconds=9)
    assert beat.alive and beat.cancel_requested
    sq = await task_row(db, created.job_id, "sq")
    assert sq["status"] == TaskStatus.FAILED.value
    assert sq["error"] == "instance sq[0] failed: boom"
    assert (await task_row(db, created.job_id, "sum"))["status"] == TaskStatus.CANCELLED.value
    left = await db.fetch_val(
        "SELECT count(*) FROM tasks WHERE map_parent = :p AND status = 'cancelled'",
        {"p": str(sq["id"])},
    )
    assert left == 8
    # The runner stops it and reports it cancelled, which ends the job.
    after = await tr.finish_attempt(
        db, b.task_id, 1, tr.Outcome(AttemptStatus.CANCELLED, error="cancelled")
    )
    assert after.ready == [] and after.cancel_running == []
    assert after.job_status == JobStatus.FAILED
    assert (await task_row(db, created.job_id, "sq[1]"))["status"] == TaskStatus.CANCELLED.value
    reason = await db.fetch_val(
        "SELECT data ->> 'reason' FROM events WHERE task_id = :t AND type = 'task.cancelled'",
        {"t": b.task_id},
    )
    assert reason == "its map task ended"


async def test_an_instance_that_ends_before_its_stop_arrives_changes_nothing(
    db: Database, token_id: str
) -> None:
    created = await tr.create_job(
        db, map_job(items=list(range(3)), max_attempts=1), token_id=token_id
    )
    a, b, c = [
        await tr.claim_attempt(db, r.task_id, runner_id="r", lease_seconds=9) for r in created.ready
    ]
    assert a is not None and b is not None and c is not None
    after = await tr.finish_attempt(db, a.task_id, 1, failed())
    assert sorted(after.cancel_running) == sorted([(b.task_id, 1), (c.task_id, 1)])
    # b's success raced the signal: kept, but the map task stays failed; c is stopped.
    after = await tr.finish_attempt(db, b.task_id, 1, ok(1))
    assert after.cancel_running == [] and after.job_status is None
    after = await tr.finish_attempt(
        db, c.task_id, 1, tr.Outcome(AttemptStatus.CANCELLED, error="cancelled")
    )
    assert after.job_status == JobStatus.FAILED
    assert (await task_row(db, created.job_id, "sq"))["status"] == TaskStatus.FAILED.value


async def test_a_running_map_does_not_stop_its_instances(db: Database, token_id: str) -> None:
    created = await tr.create_job(db, map_job(items=list(range(2))), token_id=token_id)
    a, b = [
        await tr.claim_attempt(db, r.task_id, runner_id="r", lease_seconds=9) for r in created.ready
    ]
    assert a is not None and b is not None
    after = await tr.finish_attempt(db, a.task_id, 1, ok(1))
    assert after.cancel_running == []
    beat = await tr.heartbeat(db, b.task_id, 1, lease_seconds=9)
    assert beat.alive and not beat.cancel_requested


async def test_cancelling_a_job_ends_its_map(db: Database, token_id: str) -> None:
    created = await tr.create_job(
        db, map_job(items=list(range(10)), max_parallel=3), token_id=token_id
    )
    a = await tr.claim_attempt(db, created.ready[0].task_id, runner_id="r", lease_seconds=9)
    assert a is not None
    after = await tr.cancel_job(db, created.job_id)
    assert after.cancel_running == [(a.task_id, 1)]  # the instance, never the map task
    assert after.job_status is None
    assert (await task_row(db, created.job_id, "sq"))["status"] == TaskStatus.RUNNING.value
    after = await tr.finish_attempt(
        db, a.task_id, 1, tr.Outcome(AttemptStatus.CANCELLED, error="cancelled")
    )
    assert after.job_status == JobStatus.CANCELLED
    assert (await task_row(db, created.job_id, "sq"))["status"] == TaskStatus.CANCELLED.value


async def test_cancelling_a_map_with_nothing_running_ends_it_at_once(
    db: Database, token_id: str
) -> None:
    created = await tr.create_job(db, map_job(items=list(range(5))), token_id=token_id)
    after = await tr.cancel_job(db, created.job_id)
    assert after.cancel_running == [] and after.job_status == JobStatus.CANCELLED
