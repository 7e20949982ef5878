"""A killed runner's task runs once: its container is killed before the retry's starts.

Runner A is a ``homerun runner`` subprocess, SIGKILLed while its task sleeps; runner B
takes the retry. The order of what happened is read back from the engine's own event log
(``docker events``), where every container event carries homerun's labels.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker
import pytest

from runners.containers import LABEL_ATTEMPT, LABEL_INSTANCE, LABEL_TASK
from runners.worker import Runner
from tests.conftest import eventually
from tests.harness.services import ServiceProcess
from tests.integration.runners.conftest import Jobs, shell

pytestmark = pytest.mark.integration

# Long enough that a first run left alone would still be running when the retry starts.
SLOW = "sleep 10; echo finished"


@dataclass(frozen=True)
class Happened:
    action: str
    attempt: int
    at_ns: int
    exit_code: str | None


def engine_events(
    client: docker.DockerClient, instance: str, task_id: str, since: float
) -> list[Happened]:
    found = client.api.events(
        since=int(since) - 1,
        until=int(time.time()) + 1,
        decode=True,
        filters={"type": "container", "label": f"{LABEL_INSTANCE}={instance}"},
    )
    seen = []
    for event in found:
        attributes = event.get("Actor", {}).get("Attributes", {})
        if attributes.get(LABEL_TASK) != task_id:
            continue
        seen.append(
            Happened(
                event["Action"],
                int(attributes[LABEL_ATTEMPT]),
                int(event["timeNano"]),
                attributes.get("exitCode"),
            )
        )
    return seen


def first(events: list[Happened], action: str, attempt: int) -> Happened:
    return next(e for e in events if e.action == action and e.attempt == attempt)


async def run_and_lose_first_attempt(
    jobs: Jobs, spawn_runner: Callable[..., ServiceProcess]
) -> tuple[str, str, float]:
    """Submit the slow task, let runner A start it, SIGKILL A; wait for its lease to end."""
    since = time.time()
    created = await jobs.submit(shell("slow", SLOW))
    task_id = str((await jobs.tasks(created.job_id))["slow"]["id"])
    runner_a = spawn_runner("runner-a")

    async def container_running() -> bool:
        # Running, not only created: the runner records the container before it starts it,
        # and one killed in between leaves a container that never ran (nothing to kill).
        attempts = await jobs.attempts(task_id)
        if not attempts or attempts[0]["container_id"] is None:
            return False
        state = await asyncio.to_thread(
            lambda: docker.from_env().api.inspect_container(attempts[0]["container_id"])
        )
        return bool(state["State"]["Running"])

    await eventually(container_running, 30, "attempt 1's container to run")
    runner_a.kill()

    async def lease_over() -> bool:
        return bool(
            await jobs.db.fetch_val(
                "SELECT lease_expires_at < clock_timestamp() FROM attempts"
                " WHERE task_id = :t AND number = 1",
                {"t": task_id},
            )
        )

    await eventually(lease_over, 10, "attempt 1's lease to run out")
    return created.job_id, task_id, since


async def test_a_starting_runner_kills_the_lost_run_before_it_runs_the_retry(
    jobs: Jobs,
    spawn_runner: Callable[..., ServiceProcess],
    start_runner: Callable[..., Runner],
    docker_client: docker.DockerClient,
    instance: str,
) -> None:
    job_id, task_id, since = await run_and_lose_first_attempt(jobs, spawn_runner)
    # B's periodic pass is far off: only what a starting runner does can recover the task
    # in time (reconcile at once, then kill the lost run before the retry).
    start_runner(runner_id="runner-b", reconcile_seconds=60.0)
    await eventually(lambda: jobs.finished(job_id), 90, "the job to finish")

    assert await jobs.job_status(job_id) == "succeeded"
    attempts = await jobs.attempts(task_id)
    assert [(a["status"], a["runner_id"]) for a in attempts] == [
        ("lost", "runner-a"),
        ("succeeded", "runner-b"),
    ]
    assert attempts[0]["container_gone_at"] is not None
    events = await asyncio.to_thread(engine_events, docker_client, instance, task_id, since)
    died = first(events, "die", 1)
    assert died.exit_code == "137", events  # killed, not left to finish its sleep
    assert died.at_ns < first(events, "start", 2).at_ns, events
    assert [e.exit_code for e in events if e.action == "die"] == ["137", "0"], events


async def test_a_lost_run_on_another_engine_holds_the_retry_until_its_sweep(
    jobs: Jobs,
    spawn_runner: Callable[..., ServiceProcess],
    start_runner: Callable[..., Runner],
    docker_client: docker.DockerClient,
    instance: str,
) -> None:
    job_id, task_id, since = await run_and_lose_first_attempt(jobs, spawn_runner)
    # As if A's container ran on another node: B may not kill it itself, and waits until
    # that node's sweep (here B's own, which sees every container of this engine) has.
    await jobs.db.execute(
        "UPDATE attempts SET engine_id = 'another-engine' WHERE task_id = :t", {"t": task_id}
    )
    start_runner(runner_id="runner-b", reconcile_seconds=1.0, lost_container_wait_seconds=60.0)
    await eventually(lambda: jobs.finished(job_id), 90, "the job to finish")

    assert await jobs.job_status(job_id) == "succeeded"
    events = await asyncio.to_thread(engine_events, docker_client, instance, task_id, since)
    died = first(events, "die", 1)
    assert died.exit_code == "137", events
    assert died.at_ns < first(events, "start", 2).at_ns, events


async def test_a_lost_run_nobody_can_see_delays_the_retry_by_the_bound_only(
    jobs: Jobs,
    spawn_runner: Callable[..., ServiceProcess],
    start_runner: Callable[..., Runner],
    docker_client: docker.DockerClient,
) -> None:
    job_id, task_id, _ = await run_and_lose_first_attempt(jobs, spawn_runner)
    # Its node is gone: the container went with it, and no sweep will ever report it.
    attempt: Any = await jobs.attempts(task_id)
    await asyncio.to_thread(
        docker_client.api.remove_container, attempt[0]["container_id"], force=True
    )
    await jobs.db.execute(
        "UPDATE attempts SET engine_id = 'a-dead-node' WHERE task_id = :t", {"t": task_id}
    )
    wait = 3.0
    start_runner(runner_id="runner-b", lost_container_wait_seconds=wait)
    await eventually(lambda: jobs.finished(job_id), 90, "the job to finish")

    assert await jobs.job_status(job_id) == "succeeded"
    lost, retry = await jobs.attempts(task_id)
    assert lost["container_gone_at"] is None
    waited = (retry["started_at"] - lost["finished_at"]).total_seconds()
    assert waited >= wait
