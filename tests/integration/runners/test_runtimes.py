"""The task runtime on this engine: runc unless runsc is asked for (or auto finds it), and a
runner asked for runsc on an engine without it refuses to start rather than run weaker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from plugins.tasktypes import ContainerSpec
from runners.results import Stop, Stopped, StopReason
from tests.conftest import eventually, wait_for
from tests.harness.services import ServiceProcess
from tests.integration.runners.conftest import SHELL_IMAGE, containers_of, small_engine
from tests.integration.runners.test_containers import labels

pytestmark = pytest.mark.integration


def _registered(client: docker.DockerClient) -> set[str]:
    return set(client.info().get("Runtimes") or {})


@pytest.mark.parametrize("requested", ["runc", "auto"])
async def test_the_container_runs_under_the_chosen_runtime(
    requested: str, instance: str, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    expected = "runsc" if requested == "auto" and "runsc" in _registered(docker_client) else "runc"
    engine = small_engine(instance, tmp_path / "work", task_runtime=requested)
    try:
        choice = await engine.task_runtime()
        assert choice.runtime == expected, choice
        assert requested in choice.reason
        stop = Stop()
        running = asyncio.ensure_future(
            engine.run(
                ContainerSpec(image=SHELL_IMAGE, argv=["sleep", "30"]),
                labels(instance),
                payload={},
                inputs={},
                time_limit=30,
                stop=stop,
            )
        )
        [container] = await eventually(
            lambda: asyncio.to_thread(containers_of, docker_client, instance), 20, "the container"
        )
        stop.request(StopReason.CANCELLED)
        assert isinstance(await running, Stopped)
        assert container.attrs["HostConfig"]["Runtime"] == expected
    finally:
        engine.close()


def test_a_runner_asked_for_runsc_on_an_engine_without_it_does_not_start(
    spawn_runner: Callable[..., ServiceProcess], docker_client: docker.DockerClient
) -> None:
    if "runsc" in _registered(docker_client):
        pytest.skip("this engine has runsc registered: nothing to refuse")
    runner = spawn_runner("runner-runsc", task_runtime="runsc")
    wait_for(lambda: runner.proc.poll() is not None, timeout=60, message="the runner to exit")
    assert runner.proc.returncode != 0
    assert "HOMERUN_TASK_RUNTIME=runsc, but the Docker engine has no runtime named runsc" in (
        runner.tail()
    )
