"""Task images pulled on first use from a real registry (Debian's ``docker-registry``).

The task names an unqualified image (``hrtest-<id>/task-shell:t``) the way built-in task
types do; the runner qualifies it with ``task_image_registry`` and pulls it because the
engine lacks it. The registry's access log tells how many pulls it served. Freezing the
registry with SIGSTOP makes a pull that hangs, for the time-out and the stop paths.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import pytest

from core.transitions import MAX_INFRASTRUCTURE_RETRIES, NewTask
from plugins.tasktypes import ContainerSpec
from runners.containers import AttemptLabels
from runners.results import EngineFailed, Stop, Stopped, exit_code
from runners.worker import Runner
from tests.conftest import eventually
from tests.integration.runners.conftest import SHELL_IMAGE, Jobs, containers_of, small_engine
from tests.registry import Registry, running_registry

pytestmark = pytest.mark.integration

TAG = "t"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    with running_registry(tmp_path / "registry") as reg:
        yield reg


@dataclass
class Pushed:
    """An image in the registry and on no engine: ``name`` unqualified, ``qualified`` not."""

    name: str
    qualified: str
    repository: str
    pushed_at: int  # the registry log's size once the push was done


@pytest.fixture
def pushed(registry: Registry, docker_client: docker.DockerClient) -> Iterator[Pushed]:
    repository = f"hrtest-{uuid.uuid4().hex[:12]}/task-shell"
    name = f"{repository}:{TAG}"
    qualified = f"{registry.addr}/{name}"
    try:
        source = docker_client.images.get(SHELL_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{SHELL_IMAGE} is missing: run `make images` first")
    source.tag(f"{registry.addr}/{repository}", TAG)
    try:
        for event in docker_client.api.push(
            f"{registry.addr}/{repository}", tag=TAG, stream=True, decode=True
        ):
            assert "error" not in event, event
        # Untagging the last tag of the pushed name drops its digest reference too; the
        # image itself stays, still tagged as SHELL_IMAGE.
        docker_client.images.remove(qualified)
        assert not _on_engine(docker_client, qualified)
        assert not _on_engine(docker_client, name)
        yield Pushed(name, qualified, repository, registry.log_size())
    finally:
        # What the runner pulled, or what a failed push left: only names this test made.
        for ref in (qualified, name):
            if _on_engine(docker_client, ref):
                docker_client.images.remove(ref)


def _on_engine(client: docker.DockerClient, ref: str) -> bool:
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


def container_task(name: str, image: str, max_attempts: int = 3) -> NewTask:
    payload = {"image": image, "argv": ["sh", "-c", f"echo {name}"]}
    return NewTask(name, "container", payload, max_attempts=max_attempts)


def unknown_image() -> str:
    """An unqualified name no registry has: a pull of it can only fail, leaving nothing."""
    return f"hrtest-{uuid.uuid4().hex[:12]}/absent:{TAG}"


async def test_a_missing_image_is_pulled_once_from_the_registry_and_run(
    jobs: Jobs,
    start_runner: Callable[..., Runner],
    registry: Registry,
    pushed: Pushed,
    docker_client: docker.DockerClient,
    instance: str,
) -> None:
    absent = unknown_image()
    created = await jobs.submit(*(container_task(f"t{i}", pushed.name) for i in range(3)))
    # A frozen registry holds the pull until all three attempts wait for the image: a
    # pull of an image whose layers are local is too quick to overlap by chance.
    registry.freeze()
    # The allow-list holds the names as written; the runner alone knows the registry.
    runner = start_runner(
        runner_concurrency=3,
        task_image_registry=registry.addr,
        image_pull_timeout_seconds=60.0,
        allowed_images=(pushed.name, absent),
    )
    await eventually(
        lambda: runner.engine.puller.in_flight == {pushed.qualified: 3}, 20, "three waiting"
    )
    registry.thaw()
    await eventually(lambda: jobs.finished(created.job_id), 60, "the job to finish")

    assert await jobs.job_status(created.job_id) == "succeeded"
    tasks = await jobs.tasks(created.job_id)
    for name, task in tasks.items():
        [result] = await jobs.results(str(task["id"]))
        assert result["stdout"] == f"{name}\n"
    assert _on_engine(docker_client, pushed.qualified)
    # One pull: one request for the tag's manifest since the push, however many attempts.
    manifest = f"/v2/{pushed.repository}/manifests/{TAG}"
    await eventually(
        lambda: registry.requests_for(manifest, pushed.pushed_at), 10, "the pull in the log"
    )
    assert len(registry.requests_for(manifest, pushed.pushed_at)) == 1

    # Now on the engine, the image is used as it is; an image the registry does not have
    # fails with an engine error naming the image, and is retried as one.
    later = await jobs.submit(
        container_task("again", pushed.name), container_task("absent", absent, max_attempts=1)
    )
    await eventually(lambda: jobs.finished(later.job_id), 60, "the second job to finish")
    tasks = await jobs.tasks(later.job_id)
    assert tasks["again"]["status"] == "succeeded"
    assert len(registry.requests_for(manifest, pushed.pushed_at)) == 1
    attempts = await jobs.attempts(str(tasks["absent"]["id"]))
    assert len(attempts) == MAX_INFRASTRUCTURE_RETRIES + 1
    assert {a["failure_kind"] for a in attempts} == {"infrastructure"}
    error = attempts[0]["error"]
    assert f"pulling image {registry.addr}/{absent} failed" in error
    assert "manifest unknown" in error
    assert all(a["container_id"] is None for a in attempts)
    assert containers_of(docker_client, instance) == []


async def test_a_stop_while_pulling_ends_the_attempt_without_a_container(
    jobs: Jobs,
    start_runner: Callable[..., Runner],
    registry: Registry,
    docker_client: docker.DockerClient,
    instance: str,
) -> None:
    image = unknown_image()
    registry.freeze()
    created = await jobs.submit(container_task("stuck", image))
    runner = start_runner(task_image_registry=registry.addr, allowed_images=(image,))
    qualified = f"{registry.addr}/{image}"
    await eventually(lambda: runner.engine.puller.in_flight == {qualified: 1}, 20, "the pull")
    # The engine gives up on a silent registry only after ~25 s; a cancel must not wait.
    started = time.monotonic()
    await jobs.cancel(created.job_id)
    await eventually(lambda: jobs.finished(created.job_id), 10, "the job to end")

    assert time.monotonic() - started < 5
    assert await jobs.job_status(created.job_id) == "cancelled"
    [task] = (await jobs.tasks(created.job_id)).values()
    [attempt] = await jobs.attempts(str(task["id"]))
    assert attempt["status"] == "cancelled" and attempt["container_id"] is None
    assert containers_of(docker_client, instance) == []


async def test_a_pull_past_its_time_out_is_an_engine_error(
    registry: Registry, docker_client: docker.DockerClient, instance: str, tmp_path: Path
) -> None:
    image = unknown_image()
    engine = small_engine(
        instance,
        tmp_path / "work",
        runner_concurrency=1,
        log_lines_per_second=100,
        task_image_registry=registry.addr,
        image_pull_timeout_seconds=1.0,
    )
    registry.freeze()
    try:
        started = time.monotonic()
        result = await engine.run(
            ContainerSpec(image=image, argv=["true"]),
            AttemptLabels(instance, "runner-1", "job-1", "task-1", 1, token_id="token-1"),
            payload={},
            inputs={},
            time_limit=20,
            stop=Stop(),
        )
        assert time.monotonic() - started < 5
    finally:
        registry.thaw()
        engine.close()
    assert isinstance(result, EngineFailed)
    assert result.error == (
        f"pulling image {registry.addr}/{image} took longer than 1 s"
        " (HOMERUN_IMAGE_PULL_TIMEOUT_SECONDS)"
    )
    assert exit_code(result) is None and not isinstance(result, Stopped)
    assert containers_of(docker_client, instance) == []
