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
import httpx
import pytest

from core.transitions import MAX_INFRASTRUCTURE_RETRIES, NewTask
from plugins.tasktypes import ContainerSpec
from runners.containers import AttemptLabels
from runners.results import EngineFailed, Stop, Stopped, exit_code
from runners.worker import Runner
from stack import secretfiles
from stack.topology import REGISTRY_USER
from tests.conftest import eventually, free_port
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


# --- the stack's own registry: a password for every request ------------------------------

REGISTRY_PASSWORD = "registry-password-for-the-test"


@pytest.fixture
def locked_registry(tmp_path: Path) -> Iterator[Registry]:
    """A registry configured as the stack configures its own: htpasswd with the line the
    stack derives (stack.secretfiles), the debug listener its health check asks."""
    line = secretfiles.htpasswd_line(REGISTRY_USER, REGISTRY_PASSWORD)
    debug = f"127.0.0.1:{free_port()}"
    with running_registry(tmp_path / "registry", htpasswd=line, debug_addr=debug) as reg:
        yield reg


def _status(method: str, url: str, auth: tuple[str, str] | None = None) -> int:
    return httpx.request(method, url, auth=auth, timeout=5).status_code


async def test_the_locked_registry_refuses_strangers_and_the_runner_pulls_with_its_password(
    jobs: Jobs,
    start_runner: Callable[..., Runner],
    locked_registry: Registry,
    docker_client: docker.DockerClient,
    instance: str,
    tmp_path: Path,
) -> None:
    reg = locked_registry
    base = f"http://{reg.addr}"
    login = {"username": REGISTRY_USER, "password": REGISTRY_PASSWORD}
    repository = f"hrtest-{uuid.uuid4().hex[:12]}/task-shell"
    qualified = f"{reg.addr}/{repository}:{TAG}"
    docker_client.images.get(SHELL_IMAGE).tag(f"{reg.addr}/{repository}", TAG)
    try:
        # A push without the password is refused; with it, it lands.
        events = list(
            docker_client.api.push(f"{reg.addr}/{repository}", tag=TAG, stream=True, decode=True)
        )
        assert any("error" in e for e in events), events
        for event in docker_client.api.push(
            f"{reg.addr}/{repository}", tag=TAG, stream=True, decode=True, auth_config=login
        ):
            assert "error" not in event, event
        docker_client.images.remove(qualified)

        # Anyone who reaches the port and has no password gets nothing: no catalog, no
        # manifest, no blob, no delete (and with the password, deletes are still off).
        manifest = f"{base}/v2/{repository}/manifests/{TAG}"
        assert _status("GET", f"{base}/v2/_catalog") == 401
        assert _status("GET", manifest) == 401
        assert _status("GET", manifest, ("homerun", "guess")) == 401
        assert _status("DELETE", f"{base}/v2/{repository}/manifests/sha256:{'0' * 64}") == 401
        assert _status("GET", f"{base}/v2/_catalog", (REGISTRY_USER, REGISTRY_PASSWORD)) == 200
        # The health check's address answers without a password (and only on loopback).
        assert _status("GET", f"http://{reg.debug_addr}/debug/health") == 200

        # An engine without the password cannot pull; the error says what the registry said.
        anonymous = small_engine(
            instance,
            tmp_path / "work",
            runner_concurrency=1,
            log_lines_per_second=100,
            task_image_registry=reg.addr,
        )
        try:
            result = await anonymous.run(
                ContainerSpec(image=f"{repository}:{TAG}", argv=["true"]),
                AttemptLabels(instance, "runner-1", "job-1", "task-1", 1, token_id="token-1"),
                payload={},
                inputs={},
                time_limit=20,
                stop=Stop(),
            )
        finally:
            anonymous.close()
        assert isinstance(result, EngineFailed)
        assert result.error.startswith(f"pulling image {qualified} failed"), result.error
        assert not _on_engine(docker_client, qualified)

        # With the stack's settings (user, password file) it pulls and runs the task.
        runner = start_runner(
            task_image_registry=reg.addr,
            task_image_registry_username=REGISTRY_USER,
            task_image_registry_password=REGISTRY_PASSWORD,
            allowed_images=(f"{repository}:{TAG}",),
        )
        created = await jobs.submit(container_task("login", f"{repository}:{TAG}"))
        await eventually(lambda: jobs.finished(created.job_id), 60, "the logged-in job")
        assert await jobs.job_status(created.job_id) == "succeeded"
        assert _on_engine(docker_client, qualified)
        assert runner.engine.puller.in_flight == {}
    finally:
        for ref in (qualified, f"{reg.addr}/{repository}:{TAG}"):
            if _on_engine(docker_client, ref):
                docker_client.images.remove(ref)
    assert containers_of(docker_client, instance) == []
