"""The runner in-process, against real Postgres, Redis and Docker: the paths of one task."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest
import redis.asyncio as aioredis

from core import keys
from core.settings import Settings
from core.transitions import MAX_INFRASTRUCTURE_RETRIES, NewTask
from runners.worker import Runner
from tests.conftest import eventually
from tests.integration.runners.conftest import (
    Jobs,
    containers_of,
    running_containers,
    shell,
)

pytestmark = pytest.mark.integration


async def test_pipeline_runs_end_to_end_and_leaves_nothing(
    jobs: Jobs,
    start_runner: Callable[..., Runner],
    docker_client: docker.DockerClient,
    instance: str,
    settings: Settings,
    events_redis_url: str,
) -> None:
    created = await jobs.submit(
        shell("a", 'echo "hello from a"; echo \'{"n": 41}\' > /homerun/output.json'),
        shell(
            "b",
            "cat /homerun/inputs/a.json; echo; cat /homerun/input.json",
            depends_on=["a"],
        ),
    )
    start_runner()
    await eventually(lambda: jobs.finished(created.job_id), 30, "the job to finish")

    assert await jobs.job_status(created.job_id) == "succeeded"
    tasks = await jobs.tasks(created.job_id)
    assert json.loads(tasks["a"]["output"]) == {"n": 41}
    [b_result] = await jobs.results(str(tasks["b"]["id"]))
    # b saw a's output as its input file, and its own payload as input.json.
    assert b_result["stdout"].splitlines()[0] == '{"n": 41}'
    assert json.loads(b_result["stdout"].splitlines()[1])["script"].startswith("cat ")
    assert b_result["exit_code"] == 0 and not b_result["stdout_truncated"]
    # Nothing left: no container with our label, no workspace directory.
    assert containers_of(docker_client, instance) == []
    assert list((Path(settings.work_dir) / instance).iterdir()) == []
    # The live line reached the streams Redis while the task ran.
    events = aioredis.Redis.from_url(events_redis_url)
    try:
        entries: Any = await events.xrange(keys.log_stream(created.job_id))
    finally:
        await events.aclose()
    assert [
        e[1][b"line"] for e in entries if e[1][b"task_id"] == str(tasks["a"]["id"]).encode()
    ] == [b"hello from a"]


async def test_task_failures_retry_with_backoff_until_max_attempts(
    jobs: Jobs, start_runner: Callable[..., Runner]
) -> None:
    created = await jobs.submit(
        shell("flaky", 'echo "try $HOMERUN_ATTEMPT" >&2; exit 3', max_attempts=3),
        shell("after", "true", depends_on=["flaky"]),
    )
    start_runner()
    await eventually(lambda: jobs.finished(created.job_id), 30, "the job to finish")

    assert await jobs.job_status(created.job_id) == "failed"
    tasks = await jobs.tasks(created.job_id)
    assert tasks["flaky"]["status"] == "failed" and tasks["after"]["status"] == "cancelled"
    attempts = await jobs.attempts(str(tasks["flaky"]["id"]))
    assert [(a["status"], a["failure_kind"], a["exit_code"]) for a in attempts] == [
        ("failed", "task", 3)
    ] * 3
    assert attempts[-1]["error"] == "exited with code 3"
    results = await jobs.results(str(tasks["flaky"]["id"]))
    assert [r["stderr"] for r in results] == ["try 1\n", "try 2\n", "try 3\n"]
    # Each retry waited for a back-off the state machine chose, announced in its event.
    retrying = await jobs.db.fetch_all(
        "SELECT data FROM events WHERE job_id = :j AND type = 'task.retrying' ORDER BY seq",
        {"j": created.job_id},
    )
    assert len(retrying) == 2
    assert all(json.loads(r["data"])["retry_at"] for r in retrying)


async def test_infrastructure_failures_are_told_apart_and_do_not_use_attempts(
    jobs: Jobs, start_runner: Callable[..., Runner]
) -> None:
    created = await jobs.submit(
        NewTask("noimage", "test-missing-image", {}, max_attempts=1),
        # Refused when the runner builds its container: never retried, whatever max_attempts.
        NewTask("refused", "test-refuse", {}, max_attempts=3),
    )
    start_runner()
    await eventually(lambda: jobs.finished(created.job_id), 60, "the job to finish")

    tasks = await jobs.tasks(created.job_id)
    noimage = await jobs.attempts(str(tasks["noimage"]["id"]))
    # An engine failure is retried past max_attempts, up to the infrastructure bound.
    assert len(noimage) == MAX_INFRASTRUCTURE_RETRIES + 1
    assert {a["failure_kind"] for a in noimage} == {"infrastructure"}
    assert "homerun/test-no-such-image:0 is not on this Docker engine" in noimage[0]["error"]
    refused = await jobs.attempts(str(tasks["refused"]["id"]))
    assert [(a["failure_kind"], a["error"]) for a in refused] == [
        ("payload", "payload refused: this payload is never good enough")
    ]
    assert tasks["noimage"]["status"] == tasks["refused"]["status"] == "failed"


async def test_time_out_kills_the_container(
    jobs: Jobs,
    start_runner: Callable[..., Runner],
    docker_client: docker.DockerClient,
    instance: str,
) -> None:
    created = await jobs.submit(
        shell("slow", "trap '' TERM; echo started; sleep 60", timeout_s=1, max_attempts=1)
    )
    start_runner()
    started = time.monotonic()
    await eventually(lambda: jobs.finished(created.job_id), 30, "the job to finish")

    assert time.monotonic() - started < 15
    tasks = await jobs.tasks(created.job_id)
    [attempt] = await jobs.attempts(str(tasks["slow"]["id"]))
    assert attempt["failure_kind"] == "timeout"
    assert attempt["error"] == "timed out after 1 s and was killed"
    [result] = await jobs.results(str(tasks["slow"]["id"]))
    assert result["stdout"] == "started\n" and result["exit_code"] == 137
    assert containers_of(docker_client, instance) == []


@pytest.mark.parametrize("via", ["pubsub", "key"])
async def test_cancel_kills_a_running_container_within_2_seconds(
    via: str,
    jobs: Jobs,
    start_runner: Callable[..., Runner],
    docker_client: docker.DockerClient,
    instance: str,
) -> None:
    created = await jobs.submit(shell("long", "echo started; sleep 60"))
    start_runner()

    async def running() -> list[Any]:
        return list(running_containers(docker_client, instance))

    [container] = await eventually(running, 30, "the task's container to run")
    cancelled_at = time.monotonic()
    if via == "pubsub":
        await jobs.cancel(created.job_id)
    else:
        # A runner that missed the pub/sub message still sees the key.
        from core import transitions as tr

        after = await tr.cancel_job(jobs.db, created.job_id)
        [(task_id, attempt)] = after.cancel_running
        await jobs.redis.set(keys.queue_cancel(task_id), str(attempt))

    def dead() -> bool:
        try:
            container.reload()
        except docker.errors.NotFound:
            return True
        return bool(container.status != "running")

    await eventually(lambda: asyncio.to_thread(dead), 5, "the container to die", interval=0.02)
    assert time.monotonic() - cancelled_at < 2.0
    await eventually(lambda: jobs.finished(created.job_id), 10, "the job to settle")
    assert await jobs.job_status(created.job_id) == "cancelled"
    task = (await jobs.tasks(created.job_id))["long"]
    assert task["status"] == "cancelled"
    [row] = await jobs.attempts(str(task["id"]))
    assert row["status"] == "cancelled"
    assert containers_of(docker_client, instance) == []


async def test_sigterm_hands_running_tasks_back_after_the_grace_period(
    jobs: Jobs,
    start_runner: Callable[..., Runner],
    docker_client: docker.DockerClient,
    instance: str,
) -> None:
    created = await jobs.submit(
        shell(
            "handed", 'if [ "$HOMERUN_ATTEMPT" = 1 ]; then sleep 60; fi; echo done', max_attempts=1
        )
    )
    first = start_runner(shutdown_grace_seconds=0.5)
    await eventually(
        lambda: asyncio.to_thread(running_containers, docker_client, instance), 30, "a container"
    )
    first.stop()
    task_id = created.ready[0].task_id

    async def handed_back() -> bool:
        attempts = await jobs.attempts(task_id)
        return bool(attempts) and attempts[0]["status"] == "failed"

    await eventually(handed_back, 15, "the attempt to be handed back")
    [attempt] = await jobs.attempts(task_id)
    assert attempt["failure_kind"] == "infrastructure"
    assert "shut down" in attempt["error"]
    assert containers_of(docker_client, instance) == []
    # max_attempts=1, yet the task runs again: a shutdown is not the task's fault.
    start_runner(runner_id=f"{instance}-second")
    await eventually(lambda: jobs.finished(created.job_id), 30, "the job to finish")
    assert await jobs.job_status(created.job_id) == "succeeded"
    assert [r["stdout"] for r in await jobs.results(task_id)] == ["", "done\n"]


async def test_a_superseded_attempt_is_refused_by_postgres(
    jobs: Jobs,
    start_runner: Callable[..., Runner],
    docker_client: docker.DockerClient,
    instance: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from core import transitions as tr
    from core.models import AttemptStatus

    created = await jobs.submit(
        shell("t", "sleep 1; echo '\"from attempt 1\"' > /homerun/output.json")
    )
    task_id = created.ready[0].task_id
    # A heartbeat slower than the task: the runner cannot learn it lost the lease, so it
    # reaches finish_attempt, and only the fence in Postgres stands in its way.
    start_runner(heartbeat_seconds=30, reconcile_seconds=30)
    await eventually(
        lambda: asyncio.to_thread(running_containers, docker_client, instance), 30, "attempt 1"
    )
    await jobs.db.execute(
        "UPDATE attempts SET lease_expires_at = now() - interval '1 s' WHERE task_id = :t",
        {"t": task_id},
    )
    await tr.expire_leases(jobs.db, retry_base_seconds=0)
    second = await tr.claim_attempt(jobs.db, task_id, runner_id="someone-else", lease_seconds=60)
    assert second is not None and second.attempt == 2

    await eventually(
        lambda: asyncio.sleep(0, "was superseded" in caplog.text), 15, "the stale finish"
    )
    assert await jobs.results(task_id) == []
    mine = tr.Outcome(AttemptStatus.SUCCEEDED, exit_code=0, output="from attempt 2")
    assert (await tr.finish_attempt(jobs.db, task_id, 2, mine)).applied
    assert [r["attempt"] for r in await jobs.results(task_id)] == [2]
    assert json.loads((await jobs.tasks(created.job_id))["t"]["output"]) == "from attempt 2"
    assert containers_of(docker_client, instance) == []
