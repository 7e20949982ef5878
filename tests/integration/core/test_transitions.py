"""The state machine against a real Postgres: submission, claims, fencing, retries, cancel."""

from __future__ import annotations

import asyncio

import pytest
from databases import Database

from core import transitions as tr
from core.models import AttemptStatus, FailureKind, JobStatus, TaskStatus
from core.tokens import create_token

pytestmark = pytest.mark.integration


@pytest.fixture
async def token_id(db: Database) -> str:
    token_id, _ = await create_token(db, "test")
    return token_id


def pipeline() -> tr.NewJob:
    return tr.NewJob(
        name="p",
        tasks=[
            tr.NewTask("a", "shell", {"script": "true"}),
            tr.NewTask("b", "shell", {"script": "true"}, depends_on=["a"]),
            tr.NewTask("c", "shell", {"script": "true"}, depends_on=["a", "b"], max_attempts=2),
        ],
    )


async def statuses(db: Database, job_id: str) -> dict[str, str]:
    rows = await db.fetch_all("SELECT name, status FROM tasks WHERE job_id = :j", {"j": job_id})
    return {r["name"]: r["status"] for r in rows}


async def event_types(db: Database, job_id: str) -> list[str]:
    rows = await db.fetch_all(
        "SELECT seq, type FROM events WHERE job_id = :j ORDER BY seq", {"j": job_id}
    )
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    return [r["type"] for r in rows]


def ok() -> tr.Outcome:
    return tr.Outcome(AttemptStatus.SUCCEEDED, exit_code=0, output={"v": 1})


def failed(kind: FailureKind = FailureKind.TASK) -> tr.Outcome:
    return tr.Outcome(AttemptStatus.FAILED, exit_code=1, error="boom", failure_kind=kind)


async def test_pipeline_runs_in_dependency_order(db: Database, token_id: str) -> None:
    created = await tr.create_job(db, pipeline(), token_id=token_id)
    assert [r.task_id for r in created.ready] and len(created.ready) == 1
    assert await statuses(db, created.job_id) == {"a": "queued", "b": "pending", "c": "pending"}

    claim = await tr.claim_attempt(db, created.ready[0].task_id, runner_id="r1", lease_seconds=10)
    assert claim is not None and claim.attempt == 1 and claim.task_name == "a"
    # A second delivery of the same queue entry is stale.
    assert await tr.claim_attempt(db, claim.task_id, runner_id="r2", lease_seconds=10) is None
    after = await tr.finish_attempt(db, claim.task_id, 1, ok())
    assert after.applied and [await_name for await_name in after.ready]
    b = await tr.claim_attempt(db, after.ready[0].task_id, runner_id="r1", lease_seconds=10)
    assert b is not None and b.inputs == {"a": {"v": 1}}
    after = await tr.finish_attempt(db, b.task_id, 1, ok())
    c = await tr.claim_attempt(db, after.ready[0].task_id, runner_id="r1", lease_seconds=10)
    assert c is not None and set(c.inputs) == {"a", "b"}
    after = await tr.finish_attempt(db, c.task_id, 1, ok())
    assert after.job_status == JobStatus.SUCCEEDED
    types = await event_types(db, created.job_id)
    assert types[0] == "job.queued" and types[-1] == "job.succeeded"
    assert types.count("task.succeeded") == 3 and types.count("job.running") == 1


async def test_stale_attempt_is_fenced_and_retries_exhaust(db: Database, token_id: str) -> None:
    created = await tr.create_job(
        db,
        tr.NewJob(
            [
                tr.NewTask("x", "shell", {}, max_attempts=2),
                tr.NewTask("y", "shell", {}, depends_on=["x"]),
            ]
        ),
        token_id=token_id,
    )
    tid = created.ready[0].task_id
    first = await tr.claim_attempt(db, tid, runner_id="r1", lease_seconds=0.01)
    assert first is not None
    await db.execute("UPDATE attempts SET lease_expires_at = now() - interval '1 s'")
    lost = await tr.expire_leases(db, retry_base_seconds=0)
    assert [r.task_id for r in lost.ready] == [tid]
    # The stalled runner wakes up: its write is refused.
    assert not (await tr.finish_attempt(db, tid, 1, ok())).applied
    assert not (await tr.heartbeat(db, tid, 1, lease_seconds=5)).alive
    second = await tr.claim_attempt(db, tid, runner_id="r2", lease_seconds=10)
    assert second is not None and second.attempt == 2
    # Lost leases do not use up max_attempts: two task failures do.
    after = await tr.finish_attempt(db, tid, 2, failed(), retry_base_seconds=0)
    assert after.ready and (await statuses(db, created.job_id))["x"] == "queued"
    third = await tr.claim_attempt(db, tid, runner_id="r2", lease_seconds=10)
    assert third is not None
    after = await tr.finish_attempt(db, tid, 3, failed())
    assert after.job_status == JobStatus.FAILED
    assert await statuses(db, created.job_id) == {"x": "failed", "y": "cancelled"}
    assert await db.fetch_val("SELECT count(*) FROM results WHERE task_id = :t", {"t": tid}) == 2


async def test_cancel_running_job(db: Database, token_id: str) -> None:
    created = await tr.create_job(db, pipeline(), token_id=token_id)
    claim = await tr.claim_attempt(db, created.ready[0].task_id, runner_id="r", lease_seconds=10)
    assert claim is not None
    after = await tr.cancel_job(db, created.job_id)
    assert after.cancel_running == [(claim.task_id, 1)] and after.job_status is None
    assert (await tr.heartbeat(db, claim.task_id, 1, lease_seconds=5)).cancel_requested
    done = await tr.finish_attempt(
        db, claim.task_id, 1, tr.Outcome(AttemptStatus.CANCELLED, exit_code=137)
    )
    assert done.job_status == JobStatus.CANCELLED
    assert set((await statuses(db, created.job_id)).values()) == {TaskStatus.CANCELLED.value}
    again = await tr.cancel_job(db, created.job_id)
    assert not again.applied and again.job_status == JobStatus.CANCELLED


async def test_idempotent_create(db: Database, token_id: str) -> None:
    one = await tr.create_job(
        db, pipeline(), token_id=token_id, idempotency_key="k", request_hash="h1"
    )
    two = await tr.create_job(
        db, pipeline(), token_id=token_id, idempotency_key="k", request_hash="h1"
    )
    assert two.job_id == one.job_id and not two.created
    with pytest.raises(tr.IdempotencyConflict):
        await tr.create_job(
            db, pipeline(), token_id=token_id, idempotency_key="k", request_hash="h2"
        )


async def test_cancel_racing_claims_neither_deadlocks_nor_loses_a_task(
    migrated_database_url: str, token_id: str
) -> None:
    # Separate pools so the claims and the cancel really run in parallel transactions.
    pools = [Database(migrated_database_url) for _ in range(4)]
    for pool in pools:
        await pool.connect()
    try:
        for _ in range(5):
            job = tr.NewJob([tr.NewTask(f"t{i}", "shell", {}) for i in range(12)])
            created = await tr.create_job(pools[0], job, token_id=token_id)
            claims = [
                tr.claim_attempt(pools[i % 3], r.task_id, runner_id="r", lease_seconds=10)
                for i, r in enumerate(created.ready)
            ]
            results = await asyncio.gather(
                *claims, tr.cancel_job(pools[3], created.job_id), return_exceptions=True
            )
            assert not [r for r in results if isinstance(r, BaseException)]
            cancel = results[-1]
            assert isinstance(cancel, tr.Aftermath)
            claimed = {c.task_id for c in results[:-1] if isinstance(c, tr.Claim)}
            # Whatever was claimed before the cancel is signalled; the rest is cancelled.
            assert {task_id for task_id, _ in cancel.cancel_running} == claimed
            left = await statuses(pools[0], created.job_id)
            assert sorted(left.values()) == sorted(
                ["running"] * len(claimed) + ["cancelled"] * (12 - len(claimed))
            )
    finally:
        for pool in pools:
            await pool.disconnect()
