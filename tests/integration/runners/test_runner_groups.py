"""Two runner groups on one engine: two ``homerun runner`` processes with different labels.

Each task runs only on a runner of its group (the runner id on every attempt); a task
whose group is down stays queued through the reconciler's passes and a wiped queue, in its
own group's line, and runs once that group comes up; the size a task asks for is the
size of its container in ``docker inspect``.
"""

from __future__ import annotations

from collections.abc import Callable

import docker
import pytest
import redis.asyncio as aioredis

from core import keys, queue
from runners.containers import LABEL_TASK
from tests.conftest import eventually
from tests.harness.services import ServiceProcess
from tests.integration.runners.conftest import Jobs, containers_of, shell

pytestmark = pytest.mark.integration


async def test_tasks_run_only_on_their_group_and_wait_while_it_is_down(
    jobs: Jobs,
    qredis: aioredis.Redis,
    spawn_runner: Callable[..., ServiceProcess],
    instance: str,
) -> None:
    small, big = f"{instance}-small", f"{instance}-big"
    created = await jobs.submit(
        *(shell(f"big-{i}", "echo big", runs_on=["bigdisk"]) for i in range(4)),
        *(shell(f"small-{i}", "echo small", runs_on=["small"]) for i in range(4)),
        shell("any", "echo any"),
    )
    spawn_runner(big, runner_labels=("bigdisk",), runner_concurrency=2)

    async def big_done() -> bool:
        tasks = await jobs.tasks(created.job_id)
        return all(t["status"] == "succeeded" for n, t in tasks.items() if n.startswith("big-"))

    await eventually(big_done, 60, "the bigdisk tasks on the bigdisk runner")
    # The small group is down: its tasks stay queued, in their own line, whatever the
    # reconciler (every 0.5 s) does; even a wiped queue is refilled into the right line.
    await qredis.flushdb()
    small_ids = {
        str(t["id"]) for n, t in (await jobs.tasks(created.job_id)).items() if "small" in n
    }

    async def refilled() -> bool:
        return small_ids <= await queue.queued_task_ids(qredis)

    await eventually(refilled, 30, "the reconciler to re-enqueue the small tasks")
    for task_id in small_ids:
        assert await qredis.zscore(keys.queue_ready(jobs.token_id, "small"), task_id) is not None
    tasks = await jobs.tasks(created.job_id)
    assert {tasks[f"small-{i}"]["status"] for i in range(4)} == {"queued"}

    spawn_runner(small, runner_labels=("small",), runner_concurrency=2)
    await eventually(lambda: jobs.finished(created.job_id), 60, "the job")
    assert await jobs.job_status(created.job_id) == "succeeded"
    tasks = await jobs.tasks(created.job_id)
    for name, task in tasks.items():
        runners = {a["runner_id"] for a in await jobs.attempts(str(task["id"]))}
        if name.startswith("big-"):
            assert runners == {big}, name
        elif name.startswith("small-"):
            assert runners == {small}, name
        else:  # asks for no labels: any runner may take it
            assert runners <= {big, small} and runners, name


async def test_the_size_a_task_asks_for_is_its_containers(
    jobs: Jobs,
    spawn_runner: Callable[..., ServiceProcess],
    docker_client: docker.DockerClient,
    instance: str,
) -> None:
    created = await jobs.submit(
        shell("sized", "sleep 120", cpus=1.5, memory_mb=300, timeout_s=300),
        shell("default", "sleep 120", timeout_s=300),
    )
    ids = {n: str(t["id"]) for n, t in (await jobs.tasks(created.job_id)).items()}
    spawn_runner(f"{instance}-r", runner_concurrency=2)

    def host_config(task_id: str) -> dict[str, int] | None:
        for container in containers_of(docker_client, instance):
            if container.labels.get(LABEL_TASK) == task_id:
                return dict(container.attrs["HostConfig"])
        return None

    async def both_started() -> bool:
        return all(host_config(task_id) is not None for task_id in ids.values())

    await eventually(both_started, 60, "both containers")
    sized, default = host_config(ids["sized"]), host_config(ids["default"])
    assert sized is not None and default is not None
    assert sized["NanoCpus"] == 1_500_000_000
    assert sized["Memory"] == sized["MemorySwap"] == 300 * 1024 * 1024
    # Asking for nothing gets the task type's own limits, as before.
    assert default["NanoCpus"] == 1_000_000_000
    assert default["Memory"] == 256 * 1024 * 1024
    await jobs.cancel(created.job_id)
    await eventually(lambda: jobs.finished(created.job_id), 30, "the job to be cancelled")
