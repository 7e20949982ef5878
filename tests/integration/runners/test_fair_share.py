"""Fair share on a real runner: one token's flood of long, top-priority tasks cannot hold
every slot while another token's task waits (#12 item 7)."""

from __future__ import annotations

from collections.abc import Callable

import docker
import pytest
import redis.asyncio as aioredis
from databases import Database

from core import queue
from core.store import tasks as task_store
from core.tokens import create_token
from runners.worker import Runner
from tests.conftest import eventually
from tests.integration.runners.conftest import Jobs, running_containers, shell

pytestmark = pytest.mark.integration

SLOTS = 3


async def test_a_token_that_fills_every_slot_does_not_starve_another(
    db: Database,
    qredis: aioredis.Redis,
    jobs: Jobs,
    token_id: str,
    start_runner: Callable[..., Runner],
    docker_client: docker.DockerClient,
    instance: str,
) -> None:
    other, _ = await create_token(db, "latecomer")
    late_jobs = Jobs(db, qredis, other)
    # More long tasks than the runner has slots, at the top priority, with long time-outs.
    flood = await jobs.submit(
        *(shell(f"long-{i}", "sleep 300", priority=400, timeout_s=3600) for i in range(SLOTS + 2))
    )
    start_runner(runner_concurrency=SLOTS, max_running_per_token=SLOTS - 1)

    async def flood_running() -> int:
        tasks = await jobs.tasks(flood.job_id)
        return sum(t["status"] == "running" for t in tasks.values())

    async def flood_at_its_cap() -> bool:
        return await flood_running() == SLOTS - 1

    await eventually(flood_at_its_cap, 30, "the flood to take its capped share")
    late = await late_jobs.submit(shell("quick", "echo served", priority=-400))
    await eventually(lambda: late_jobs.finished(late.job_id), 30, "the other token's task")

    assert await late_jobs.job_status(late.job_id) == "succeeded"
    # It ran while every task of the flood was still running or waiting its turn.
    flood_tasks = await jobs.tasks(flood.job_id)
    assert {t["status"] for t in flood_tasks.values()} == {"running", "queued"}
    assert await flood_running() == SLOTS - 1
    assert (await queue.running(qredis)).get(token_id) == SLOTS - 1
    assert len(running_containers(docker_client, instance)) == SLOTS - 1

    await jobs.cancel(flood.job_id)
    await eventually(lambda: jobs.finished(flood.job_id), 30, "the flood to be cancelled")


async def test_a_refilled_queue_takes_turns_between_tokens(
    db: Database, qredis: aioredis.Redis, jobs: Jobs
) -> None:
    # The queue Redis was wiped: only Postgres knows what is queued. A token's backlog
    # larger than the reconciler's batch must not keep another token's tasks out of it.
    other, _ = await create_token(db, "other")
    await jobs.submit(*(shell(f"a{i}", "true", priority=400) for i in range(5)), enqueue=False)
    late = await Jobs(db, qredis, other).submit(shell("b", "true", priority=-400), enqueue=False)
    batch = await task_store.queued_batch(db, 2)
    assert {t.token_id for t in batch} == {jobs.token_id, other}
    assert late.ready[0].task_id in {t.task_id for t in batch}
    assert max(t.priority for t in batch if t.token_id == jobs.token_id) == 400
