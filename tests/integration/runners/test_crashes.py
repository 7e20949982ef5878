"""Runners that die, stall or lose their queue: no task is lost, none finishes twice.

Runners here are ``homerun runner`` subprocesses, so SIGKILL and SIGSTOP hit a
real process; leases are 2 s and the reconciler runs every 0.5 s (see conftest.settings).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest
import redis.asyncio as aioredis

from core import keys, queue
from core.settings import Settings
from runners.containers import LABEL_RUNNER
from runners.worker import Runner
from tests.conftest import eventually
from tests.harness.services import ServiceProcess
from tests.integration.runners.conftest import (
    Jobs,
    containers_of,
    running_containers,
    shell,
)

pytestmark = pytest.mark.integration

TASKS = 20
# The kill test needs a running task to kill, twenty times over: if every task finished
# before the kills did (a slow machine spawns runners slowly), there would be none. Early
# attempts therefore run long; the later ones (after the kills have cost the task several
# attempts, below the infrastructure-retry cap of 10) finish at once.
KILLABLE_OK = (
    'if [ "$HOMERUN_ATTEMPT" -lt 6 ]; then sleep 10; fi;'
    " echo '{\"ok\": true}' > /homerun/output.json"
)


async def all_finished(jobs: Jobs, job_ids: list[str]) -> bool:
    return all([await jobs.finished(job_id) for job_id in job_ids])


async def dump_state(jobs: Jobs, runners: set[ServiceProcess]) -> None:
    """On a failure, what the tasks and runners were doing (pytest shows stdout)."""
    rows = await jobs.db.fetch_all(
        "SELECT t.id, t.status, t.attempts, t.not_before, a.number, a.status AS a_status,"
        " a.runner_id, a.lease_expires_at, a.error FROM tasks t"
        " LEFT JOIN attempts a ON a.task_id = t.id AND a.number = t.attempts ORDER BY t.id"
    )
    for row in rows:
        print(dict(row._mapping))
    known = await queue.queued_task_ids(jobs.redis)
    inflight = await jobs.redis.zrange(keys.QUEUE_INFLIGHT, 0, -1, withscores=True)
    print("in the queue", known, "inflight", inflight, "per token", await queue.running(jobs.redis))
    for proc in runners:
        print("==", proc.log_path, proc.alive)
        print(proc.output()[-3000:])


async def nothing_left(client: docker.DockerClient, instance: str, settings: Settings) -> bool:
    if await asyncio.to_thread(containers_of, client, instance):
        return False
    work = Path(settings.work_dir) / instance
    return not work.exists() or not any(work.iterdir())


async def test_sigkill_a_runner_mid_task_20_times(
    jobs: Jobs,
    spawn_runner: Callable[..., ServiceProcess],
    docker_client: docker.DockerClient,
    instance: str,
    settings: Settings,
) -> None:
    job_ids = [(await jobs.submit(shell("t", KILLABLE_OK))).job_id for _ in range(TASKS)]
    # Three runners at a time: while one boots, the others are already running tasks, and
    # enough tasks that some are ready while the killed runners' leases run out.
    spawned = 0

    def spawn() -> ServiceProcess:
        nonlocal spawned
        spawned += 1
        return spawn_runner(f"{instance}-r{spawned}")

    first = [spawn(), spawn(), spawn()]
    alive = set(first)
    ids = {proc: f"{instance}-r{n}" for n, proc in enumerate(first, 1)}

    async def busy_runner() -> ServiceProcess | None:
        running = await asyncio.to_thread(running_containers, docker_client, instance)
        busy = {c.labels[LABEL_RUNNER] for c in running}
        return next((p for p in alive if ids[p] in busy and p.alive), None)

    for _ in range(20):
        victim = await eventually(busy_runner, 60, "a runner with a running task container")
        assert victim is not None
        victim.kill()  # SIGKILL: no cleanup, no goodbye
        alive.discard(victim)
        fresh = spawn()
        ids[fresh] = f"{instance}-r{spawned}"
        alive.add(fresh)

    try:
        await eventually(lambda: all_finished(jobs, job_ids), 60, "every job", interval=0.2)
    except AssertionError:
        await dump_state(jobs, alive)
        raise
    assert [await jobs.job_status(j) for j in job_ids] == ["succeeded"] * TASKS
    counts = await jobs.db.fetch_all(
        "SELECT t.id, t.status, t.output, count(r.task_id) AS results,"
        " count(*) FILTER (WHERE a.status = 'lost') AS lost"
        " FROM tasks t JOIN attempts a ON a.task_id = t.id"
        " LEFT JOIN results r ON r.task_id = a.task_id AND r.attempt = a.number"
        " WHERE t.job_id = ANY(CAST(:jobs AS uuid[])) GROUP BY t.id",
        {"jobs": job_ids},
    )
    assert len(counts) == TASKS
    assert {(r["status"], r["results"]) for r in counts} == {("succeeded", 1)}
    assert all(json.loads(r["output"]) == {"ok": True} for r in counts)
    # Every kill cost at least one attempt that was running at the time.
    assert sum(r["lost"] for r in counts) >= 20
    await eventually(
        lambda: nothing_left(docker_client, instance, settings), 15, "no container left behind"
    )
    for proc in alive:
        assert proc.stop() == 0, proc.output()[-2000:]
    assert await asyncio.to_thread(containers_of, docker_client, instance) == []


async def test_a_wiped_queue_loses_no_task(
    jobs: Jobs,
    start_runner: Callable[..., Runner],
    qredis: aioredis.Redis,
    docker_client: docker.DockerClient,
    instance: str,
) -> None:
    job_ids = [
        (await jobs.submit(shell("t", "sleep 0.2; echo '[1]' > /homerun/output.json"))).job_id
        for _ in range(6)
    ]
    start_runner(runner_concurrency=1)
    await eventually(
        lambda: asyncio.to_thread(running_containers, docker_client, instance), 30, "a task to run"
    )
    # (No check that the set is empty afterwards: the runner's own reconciler may refill
    # it at once, which is the point.)
    assert await qredis.flushall()
    await eventually(lambda: all_finished(jobs, job_ids), 60, "every job to finish")
    assert [await jobs.job_status(j) for j in job_ids] == ["succeeded"] * 6


async def test_a_queue_wiped_before_any_runner_started(
    jobs: Jobs, settings: Settings, pm: Any, qredis: aioredis.Redis
) -> None:
    job_ids = [(await jobs.submit(shell("t", "true"))).job_id for _ in range(3)]
    await qredis.flushall()
    # A burst runner looks at Postgres before it calls the queue empty.
    await asyncio.wait_for(Runner(settings, pm).run(burst=True), 60)
    assert [await jobs.job_status(j) for j in job_ids] == ["succeeded"] * 3


async def test_a_stalled_runner_cannot_overwrite_the_newer_attempt(
    jobs: Jobs,
    spawn_runner: Callable[..., ServiceProcess],
    docker_client: docker.DockerClient,
    instance: str,
    settings: Settings,
) -> None:
    created = await jobs.submit(
        shell("t", 'sleep 3; echo "{\\"attempt\\": $HOMERUN_ATTEMPT}" > /homerun/output.json')
    )
    task_id = created.ready[0].task_id
    stalled = spawn_runner(f"{instance}-stalled", runner_concurrency=1)
    await eventually(
        lambda: asyncio.to_thread(running_containers, docker_client, instance), 30, "attempt 1"
    )
    stalled.pause()
    healthy = spawn_runner(f"{instance}-healthy")

    async def second_attempt() -> bool:
        return len(await jobs.attempts(task_id)) == 2

    # The stalled runner's lease runs out; the healthy runner takes the task over.
    await eventually(second_attempt, 30, "a second attempt")
    stalled.resume()
    await eventually(lambda: jobs.finished(created.job_id), 30, "the job to finish")

    assert await jobs.job_status(created.job_id) == "succeeded"
    task = (await jobs.tasks(created.job_id))["t"]
    assert json.loads(task["output"]) == {"attempt": 2}
    first, second = await jobs.attempts(task_id)
    assert first["status"] == "lost" and first["failure_kind"] == "infrastructure"
    assert second["status"] == "succeeded"
    assert [r["attempt"] for r in await jobs.results(task_id)] == [2]
    # The woken runner noticed it had been superseded, wrote nothing, and lives on.
    await eventually(
        lambda: asyncio.sleep(
            0,
            "attempt 1 was superseded" in stalled.output()
            or "attempt 1 lost its lease" in stalled.output(),
        ),
        15,
        "the stalled runner to give attempt 1 up",
    )
    assert stalled.alive and healthy.alive
    assert [r["attempt"] for r in await jobs.results(task_id)] == [2]
    await eventually(
        lambda: nothing_left(docker_client, instance, settings), 15, "no container left behind"
    )
    assert stalled.stop() == 0 and healthy.stop() == 0
