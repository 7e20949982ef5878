"""The engine layer on a real Docker engine: lock-down, bounds, and removal in every path."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker
import docker.models.containers
import pytest

from core.settings import Settings
from plugins.tasktypes import ContainerSpec, Limits, PayloadError
from runners import blockio, identity, seccomp
from runners.containers import AttemptLabels, Engine
from runners.results import (
    EngineFailed,
    Exited,
    RunResult,
    StartFailed,
    Stop,
    Stopped,
    StopReason,
    TimedOut,
)
from tests.conftest import eventually
from tests.integration.runners.conftest import (
    SHELL_IMAGE,
    containers_of,
    guarded,
    small_settings,
)

pytestmark = pytest.mark.integration

TOKEN = "0b6f7f52-5f1c-4bd6-9d6e-3f5a2c1d9e01"


@pytest.fixture(params=["direct", "guarded"])
async def engine(
    instance: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Engine]:
    """The engine on the raw socket, and through the Docker API guard as the stack runs it."""
    settings = small_settings(instance, tmp_path / "work")
    if request.param == "direct":
        engine = Engine.from_settings(settings)
        yield engine
        engine.close()
        return
    async with guarded(settings) as guard:
        # The SDK asks the engine's version as it is made: not on the loop serving the guard.
        engine = await asyncio.to_thread(
            Engine.from_settings, replace(settings, docker_url=guard.url)
        )
        yield engine
        engine.close()
        assert guard.guard.refused == 0


def labels(instance: str, task: str = "task-1") -> AttemptLabels:
    return AttemptLabels(instance, "runner-1", "job-1", task, 1, token_id=TOKEN)


async def run(engine: Engine, instance: str, script: str, **kwargs: Any) -> RunResult:
    spec = ContainerSpec(
        image=SHELL_IMAGE,
        argv=["/bin/sh", "/homerun/task.sh"],
        files={"/homerun/task.sh": script.encode()},
        **kwargs,
    )
    return await engine.run(
        spec, labels(instance), payload={"p": 1}, inputs={"up": [1]}, time_limit=20, stop=Stop()
    )


async def test_the_container_is_locked_down(
    engine: Engine, instance: str, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    spec = ContainerSpec(
        image=SHELL_IMAGE,
        argv=["sleep", "30"],
        limits=Limits(memory_bytes=64 * 2**20, cpus=0.5, pids=32, tmpfs_bytes=8 * 2**20),
    )
    stop = Stop()
    running = asyncio.ensure_future(
        engine.run(spec, labels(instance), payload={}, inputs={}, time_limit=30, stop=stop)
    )
    [container] = await eventually(
        lambda: asyncio.to_thread(containers_of, docker_client, instance), 20, "the container"
    )
    host = container.attrs["HostConfig"]
    stop.request(StopReason.CANCELLED)
    result = await running
    assert isinstance(result, Stopped)
    assert result.reason == StopReason.CANCELLED and result.exit_code == 137
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges", seccomp.security_opt()]
    uid = identity.task_uid(TOKEN)
    assert container.attrs["Config"]["User"] == f"{uid}:{uid}"
    assert host["PidsLimit"] == 32
    assert host["Memory"] == host["MemorySwap"] == 64 * 2**20
    assert host["NanoCpus"] == 500_000_000
    assert host["LogConfig"]["Type"] == "none"
    # The settings' default rate, on the disk holding the work directory.
    device = blockio.work_dir_device(str(tmp_path / "work"))
    assert device.path is not None, device.reason
    rate = [{"Path": device.path, "Rate": Settings().task_disk_bytes_per_second}]
    assert host["BlkioDeviceWriteBps"] == host["BlkioDeviceReadBps"] == rate
    assert host["Tmpfs"]["/tmp"] == f"size={8 * 2**20},uid={uid},gid={uid},mode=0755"
    assert host["Tmpfs"]["/homerun"] == host["Tmpfs"]["/tmp"]
    assert container.labels["homerun.instance"] == instance
    assert container.labels["homerun.task"] == "task-1"
    assert container.labels["homerun.token"] == TOKEN
    assert container.labels["homerun.attempt"] == "1"
    assert container.labels["homerun.runner"] == "runner-1"
    assert containers_of(docker_client, instance) == []


async def test_files_inputs_and_output_are_placed_and_collected(
    engine: Engine, instance: str, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    result = await run(
        engine,
        instance,
        "cat /homerun/input.json /homerun/inputs/up.json; echo;"
        " echo scratch > /homerun/scratch && cat /homerun/scratch;"
        " echo x > /homerun/input.json || echo input-read-only;"
        " touch /etc/x || echo root-read-only;"
        " echo '{\"v\": 1}' > /homerun/output.json; echo oops >&2",
    )
    assert isinstance(result, Exited) and result.exit_code == 0
    assert result.stdout.splitlines() == [
        '{"p": 1}[1]',
        "scratch",
        "input-read-only",
        "root-read-only",
    ]
    assert result.stderr.endswith("oops\n")
    assert result.output_file == b'{"v": 1}\n'
    assert containers_of(docker_client, instance) == []
    assert not any((tmp_path / "work" / instance).iterdir())


async def test_output_is_bounded_and_flagged(engine: Engine, instance: str) -> None:
    result = await run(
        engine,
        instance,
        "head -c 5000000 /dev/zero | tr '\\0' x; echo small >&2;"
        " head -c 1000 /dev/zero | tr '\\0' y > /homerun/output.json",
    )
    assert isinstance(result, Exited) and result.exit_code == 0
    assert len(result.stdout) == 1000 and result.stdout_truncated
    assert result.stderr == "small\n" and not result.stderr_truncated
    # output.json over its limit is not read at all, but its size is reported.
    assert result.output_file is None and result.output_file_size == 1000


async def test_time_out_kills_and_removes(
    engine: Engine, instance: str, docker_client: docker.DockerClient
) -> None:
    spec = ContainerSpec(image=SHELL_IMAGE, argv=["sh", "-c", "trap '' TERM; sleep 30"])
    result = await engine.run(
        spec, labels(instance), payload={}, inputs={}, time_limit=0.5, stop=Stop()
    )
    assert isinstance(result, TimedOut) and result.exit_code == 137 and result.seconds < 10
    assert containers_of(docker_client, instance) == []


async def test_a_missing_command_is_the_tasks_fault_a_missing_image_the_engines(
    engine: Engine, instance: str, docker_client: docker.DockerClient
) -> None:
    no_command = await engine.run(
        ContainerSpec(image=SHELL_IMAGE, argv=["/no/such/program"]),
        labels(instance),
        payload={},
        inputs={},
        time_limit=10,
        stop=Stop(),
    )
    # One variant per ending: a start failure is therefore not also an engine failure.
    assert isinstance(no_command, StartFailed)
    no_image = await engine.run(
        ContainerSpec(image="homerun/test-no-such-image:0", argv=["true"]),
        labels(instance, "task-2"),
        payload={},
        inputs={},
        time_limit=10,
        stop=Stop(),
    )
    assert isinstance(no_image, EngineFailed)
    assert containers_of(docker_client, instance) == []


async def test_a_spec_may_not_place_files_over_the_runners_own(
    engine: Engine, instance: str
) -> None:
    for path in ("/homerun/output.json", "/homerun/inputs/x.json", "relative", "/proc/x"):
        with pytest.raises(PayloadError):
            await engine.run(
                ContainerSpec(image=SHELL_IMAGE, argv=["true"], files={path: b""}),
                labels(instance),
                payload={},
                inputs={},
                time_limit=10,
                stop=Stop(),
            )


async def test_a_caller_cancelled_while_the_engine_creates_still_removes_the_container(
    engine: Engine, instance: str, docker_client: docker.DockerClient
) -> None:
    """The window between the engine making the container and ``run`` holding it: the
    create is held open (in its thread) until the caller has been cancelled."""
    created = threading.Event()
    release = threading.Event()
    real_create = engine._create

    def held_create(*args: Any) -> Any:
        container = real_create(*args)
        created.set()
        release.wait(30)
        return container

    engine._create = held_create  # type: ignore[method-assign,assignment]
    spec = ContainerSpec(image=SHELL_IMAGE, argv=["sleep", "30"])
    running = asyncio.ensure_future(
        engine.run(spec, labels(instance), payload={}, inputs={}, time_limit=30, stop=Stop())
    )
    try:
        await eventually(created.is_set, 20, "the container created")
        running.cancel()
    finally:
        release.set()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert containers_of(docker_client, instance) == []


async def test_a_cancelled_caller_still_removes_its_container(
    engine: Engine, instance: str, docker_client: docker.DockerClient
) -> None:
    spec = ContainerSpec(image=SHELL_IMAGE, argv=["sleep", "30"])
    running = asyncio.ensure_future(
        engine.run(spec, labels(instance), payload={}, inputs={}, time_limit=30, stop=Stop())
    )
    await eventually(
        lambda: asyncio.to_thread(containers_of, docker_client, instance), 20, "the container"
    )
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    # The caller was cancelled mid-wait; the shielded cleanup still ran to the end.
    assert containers_of(docker_client, instance) == []


async def test_a_caller_cancelled_while_the_engine_attaches_still_closes_the_stream(
    engine: Engine,
    instance: str,
    docker_client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The attach runs in a thread that a cancellation does not stop: the stream it opens
    must be closed, not left to the garbage collector (a socket per cancelled attempt)."""
    attached = threading.Event()
    release = threading.Event()
    sockets: list[Any] = []
    real_attach = docker.models.containers.Container.attach

    def held_attach(self: Any, **kwargs: Any) -> Any:
        stream = real_attach(self, **kwargs)
        sockets.append(stream._response.raw._fp.fp.raw._sock)
        attached.set()
        release.wait(30)
        return stream

    monkeypatch.setattr(docker.models.containers.Container, "attach", held_attach)
    spec = ContainerSpec(image=SHELL_IMAGE, argv=["sleep", "30"])
    running = asyncio.ensure_future(
        engine.run(spec, labels(instance), payload={}, inputs={}, time_limit=30, stop=Stop())
    )
    try:
        await eventually(attached.is_set, 20, "the attach made")
        running.cancel()
    finally:
        release.set()
    with pytest.raises(asyncio.CancelledError):
        await running
    [sock] = sockets
    assert sock.fileno() == -1  # closed by the engine, not by the collector
    assert containers_of(docker_client, instance) == []
