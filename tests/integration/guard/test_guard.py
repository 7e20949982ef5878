"""The Docker API guard on a real engine, used as a compromised runner would use it.

Every test holds only what the runner holds in the stack: the guard's socket. What a task
needs works (tests/integration/runners/test_containers.py runs the engine layer through
the guard too); everything else answers 403 with the guard's reason, logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import pytest
from docker.types import LogConfig, Mount

from plugins.tasktypes import OUTPUT_FILE, ContainerSpec
from runners import containers, identity
from runners.containers import LABEL_INSTANCE, NETWORK_NONE, Engine, security_opts
from runners.results import Exited, Stop
from tests.integration.runners.conftest import (
    SHELL_IMAGE,
    Guarded,
    containers_of,
    guarded,
    small_settings,
)

pytestmark = pytest.mark.integration

T = TypeVar("T")
UID = identity.task_uid("token-guard-test")


@pytest.fixture
async def guard(instance: str, tmp_path: Path) -> AsyncIterator[Guarded]:
    async with guarded(small_settings(instance, tmp_path / "work")) as guard:
        yield guard


@pytest.fixture
async def client(guard: Guarded) -> AsyncIterator[docker.DockerClient]:
    """The runner's own access: a Docker client on the guard's socket."""
    made = await asyncio.to_thread(docker.DockerClient, base_url=guard.url)
    yield made
    made.close()


@pytest.fixture
def outsider(docker_client: docker.DockerClient) -> Iterator[Any]:
    """A running container that is not homerun's (made on the raw socket)."""
    made = docker_client.containers.run(
        SHELL_IMAGE, ["sleep", "60"], name=f"guard-outsider-{uuid.uuid4().hex[:8]}", detach=True
    )
    yield made
    made.remove(force=True)


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A blocking SDK call, off the loop that serves the guard."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def task_kwargs(instance: str, work: Path, **changes: Any) -> dict[str, Any]:
    """A create as Engine._create makes it (the guard lets it through), with ``changes``."""
    attempt = work / instance / "task-1.1"
    attempt.mkdir(parents=True, exist_ok=True)
    (attempt / "output.json").touch()
    labels = containers.AttemptLabels(instance, "runner-1", "job-1", "task-1", 1, "token-1")
    kwargs: dict[str, Any] = {
        "image": SHELL_IMAGE,
        "command": ["true"],
        "labels": labels.as_dict(),
        "user": f"{UID}:{UID}",
        "network_mode": NETWORK_NONE,
        "read_only": True,
        "mounts": [
            Mount("/homerun/inputs", str(attempt), type="bind", read_only=True),
            Mount(OUTPUT_FILE, str(attempt / "output.json"), type="bind", read_only=False),
        ],
        "cap_drop": list(containers.CAP_DROP),
        "security_opt": security_opts(),
        "pids_limit": 32,
        "mem_limit": 64 * 2**20,
        "memswap_limit": 64 * 2**20,
        "nano_cpus": 500_000_000,
        "runtime": "runc",
        "log_config": LogConfig(type=containers.LOG_DRIVER),
    }
    kwargs.update(changes)
    return kwargs


async def refused(action: Callable[[], object], reason: str) -> None:
    with pytest.raises(docker.errors.APIError) as raised:
        await call(action)
    assert raised.value.status_code == 403, raised.value
    assert "homerun guard" in str(raised.value.explanation)
    assert reason in str(raised.value.explanation), raised.value.explanation


async def test_the_runners_create_passes_and_its_container_runs(
    client: docker.DockerClient, instance: str, tmp_path: Path
) -> None:
    made = await call(client.containers.create, **task_kwargs(instance, tmp_path / "work"))
    await call(made.start)
    assert (await call(made.wait, timeout=30))["StatusCode"] == 0
    await call(made.remove, force=True)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"privileged": True}, "HostConfig.Privileged"),
        ({"cap_add": ["SYS_ADMIN"]}, "HostConfig.CapAdd"),
        ({"devices": ["/dev/null:/dev/host-null:rwm"]}, "HostConfig.Devices"),
        ({"mounts": [Mount("/host", "/", type="bind", read_only=True)]}, "/ is not under"),
        ({"volumes": {"/": {"bind": "/host", "mode": "ro"}}}, "Volumes"),
        ({"mounts": [Mount("/v", "homerun-guard-v", type="volume")]}, "only bind mounts"),
        ({"network_mode": "host"}, "NetworkMode 'host'"),
        ({"pid_mode": "host"}, "HostConfig.PidMode"),
        ({"user": "0:0"}, "User '0:0'"),
        ({"user": None}, "User None"),
        ({"security_opt": ["no-new-privileges", "seccomp=unconfined"]}, "SecurityOpt"),
        ({"cap_drop": []}, "CapDrop"),
        ({"read_only": False}, "ReadonlyRootfs"),
        ({"mem_limit": None, "memswap_limit": None}, "HostConfig.Memory"),
        ({"pids_limit": None}, "HostConfig.PidsLimit"),
        ({"runtime": "io.containerd.runc.v2"}, "HostConfig.Runtime"),
        ({"labels": {LABEL_INSTANCE: "someone-else"}}, "Labels lack"),
        ({"sysctls": {"kernel.shm_rmid_forced": "1"}}, "Sysctls"),
        ({"ports": {"80/tcp": 8080}}, "ExposedPorts"),
        ({"log_config": LogConfig(type="json-file")}, "LogConfig"),
    ],
)
async def test_a_create_off_the_profile_is_refused(
    client: docker.DockerClient,
    instance: str,
    tmp_path: Path,
    docker_client: docker.DockerClient,
    changes: dict[str, Any],
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    kwargs = task_kwargs(instance, tmp_path / "work", **changes)
    with caplog.at_level(logging.WARNING, logger="guard.proxy"):
        await refused(lambda: client.containers.create(**kwargs), reason)
    assert any("refused POST /containers/create" in r.getMessage() for r in caplog.records)
    assert containers_of(docker_client, instance) == []


async def test_a_link_under_the_work_root_is_followed(
    client: docker.DockerClient, instance: str, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    kwargs = task_kwargs(instance, work)
    os.symlink("/", work / instance / "root")
    kwargs["mounts"] = [Mount("/host", str(work / instance / "root"), type="bind", read_only=True)]
    await refused(lambda: client.containers.create(**kwargs), "(it is /)")


async def test_a_bind_swapped_for_a_link_after_the_create_is_not_started(
    client: docker.DockerClient, instance: str, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    kwargs = task_kwargs(instance, work)
    made = await call(client.containers.create, **kwargs)
    attempt = work / instance / "task-1.1"
    for child in attempt.iterdir():
        child.unlink()
    attempt.rmdir()
    os.symlink("/", attempt)
    await refused(made.start, "(it is /")
    await call(made.remove, force=True)


async def test_another_containers_are_out_of_reach(
    client: docker.DockerClient, guard: Guarded, outsider: Any
) -> None:
    reason = "is not a homerun task of this deployment"
    for action in (
        lambda: client.api.inspect_container(outsider.id),
        lambda: client.api.kill(outsider.name),
        lambda: client.api.remove_container(outsider.id, force=True),
        lambda: client.api.start(outsider.id),
        lambda: client.api.wait(outsider.id, timeout=5),
        lambda: client.api.logs(outsider.id),
    ):
        await refused(action, reason)
    # An attach, as bytes: the SDK leaves a refused attach's socket open (a warning here).
    attach = await raw(guard, "POST", f"/v1.41/containers/{outsider.id}/attach?stream=1&stdout=1")
    assert attach.startswith(b"HTTP/1.1 403") and reason.encode() in attach, attach
    await refused(lambda: client.api.exec_create(outsider.id, ["id"]), "is not a call")
    outsider.reload()
    assert outsider.status == "running"


async def test_exec_is_refused_even_in_a_task_container(
    client: docker.DockerClient, instance: str, tmp_path: Path
) -> None:
    made = await call(
        client.containers.create,
        **task_kwargs(instance, tmp_path / "work", command=["sleep", "30"]),
    )
    await call(made.start)
    await refused(lambda: client.api.exec_create(made.id, ["id"]), "is not a call")
    await call(made.remove, force=True)


async def test_listing_sees_only_this_deployments_containers(
    client: docker.DockerClient, instance: str, tmp_path: Path, outsider: Any
) -> None:
    made = await call(client.containers.create, **task_kwargs(instance, tmp_path / "work"))
    listed = await call(client.api.containers, all=True)
    assert [c["Id"] for c in listed] == [made.id]
    # A filter of the caller's own is kept, and narrowed further.
    other = await call(client.api.containers, all=True, filters={"name": outsider.name})
    assert other == []
    await call(made.remove, force=True)


async def test_the_rest_of_the_engine_api_is_refused(
    client: docker.DockerClient, outsider: Any
) -> None:
    api = client.api
    for action, reason in [
        (lambda: api.create_service({"ContainerSpec": {"Image": SHELL_IMAGE}}), "/services/"),
        (lambda: api.create_secret("guard-test", b"x"), "/secrets/create"),
        (lambda: api.create_volume("guard-test"), "/volumes/create"),
        (lambda: api.create_network("guard-test"), "/networks/create"),
        (lambda: api.networks(), "/networks"),
        (lambda: api.volumes(), "/volumes"),
        (lambda: api.inspect_swarm(), "/swarm"),
        (lambda: api.put_archive(outsider.id, "/tmp", b""), "/archive"),
        (lambda: api.commit(outsider.id), "/commit"),
        (lambda: api.remove_image(SHELL_IMAGE), "DELETE /images/"),
        (lambda: api.import_image_from_url("http://127.0.0.1:9/x.tar"), "never imported"),
        (lambda: api.prune_containers(), "/containers/prune"),
    ]:
        await refused(action, reason)


async def test_engine_facts_and_image_inspect_pass(client: docker.DockerClient) -> None:
    assert (await call(client.api.version))["ApiVersion"]
    assert (await call(client.info))["ID"]
    assert (await call(client.api.inspect_image, SHELL_IMAGE))["Id"]


async def exchange(guard: Guarded, request: bytes) -> bytes:
    """``request``, exactly these bytes, on the guard's socket; its whole answer."""
    reader, writer = await asyncio.open_unix_connection(guard.url.removeprefix("unix://"))
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer


async def raw(guard: Guarded, method: str, path: str, body: bytes = b"") -> bytes:
    """One request as bytes on the guard's socket: what no SDK would send."""
    head = f"{method} {path} HTTP/1.1\r\nHost: d\r\nContent-Length: {len(body)}\r\n\r\n"
    return await exchange(guard, head.encode() + body)


async def test_requests_no_sdk_would_send_are_refused(
    guard: Guarded, outsider: Any, instance: str, tmp_path: Path
) -> None:
    # A path the engine's router would clean into another one.
    walk = await raw(guard, "GET", f"/images/x/../../containers/{outsider.id}/json")
    assert walk.startswith(b"HTTP/1.1 403"), walk[:80]
    assert (await raw(guard, "POST", "/v1.41/build")).startswith(b"HTTP/1.1 403")
    # The engine reads JSON keys case-insensitively: a lower-case twin is not a way round.
    body = {"Image": SHELL_IMAGE, "HostConfig": {"NetworkMode": "none", "privileged": True}}
    answer = await raw(guard, "POST", "/containers/create", json.dumps(body).encode())
    assert answer.startswith(b"HTTP/1.1 403") and b"privileged" in answer, answer


def test_the_profile_follows_the_runners_settings(instance: str, tmp_path: Path) -> None:
    from guard.policy import Profile

    settings = small_settings(instance, tmp_path / "work")
    egress = replace(
        settings,
        allow_task_network=True,
        egress_network="homerun_egress",
        egress_proxy_url="http://egress-proxy:3128",
        egress_runtime="runsc-egress",
    )
    profile = Profile.from_settings(egress)
    assert profile.egress_network == "homerun_egress"
    assert "runsc-egress" in profile.runtimes
    assert Profile.from_settings(settings).egress_network == ""


async def test_a_task_with_secrets_runs_through_the_guard(instance: str, tmp_path: Path) -> None:
    """The secrets bind (runners/secretfiles.py) is the one mount outside the work root."""
    secrets_dir = Path("/dev/shm") / f"homerun-guard-secrets-{uuid.uuid4().hex[:8]}"
    settings = small_settings(instance, tmp_path / "work", secrets_dir=str(secrets_dir))
    try:
        async with guarded(settings) as guard:
            engine = await call(Engine.from_settings, replace(settings, docker_url=guard.url))
            try:
                result = await engine.run(
                    ContainerSpec(image=SHELL_IMAGE, argv=["cat", "/run/secrets/token"]),
                    containers.AttemptLabels(instance, "r", "j", "t", 1, "token-guard-test"),
                    payload={},
                    inputs={},
                    time_limit=30,
                    stop=Stop(),
                    secrets={"token": b"guarded-value"},
                )
            finally:
                engine.close()
            assert isinstance(result, Exited) and result.exit_code == 0, result
            assert result.stdout == "guarded-value"
            assert guard.guard.refused == 0
    finally:
        shutil.rmtree(secrets_dir, ignore_errors=True)


def _sdk_body(client: docker.DockerClient, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The create body the SDK sends for ``containers.create(**kwargs)``, as a dict."""
    from docker.models.containers import _create_container_args

    create = _create_container_args({**kwargs, "version": client.api._version})
    create.pop("name", None)
    create.pop("platform", None)
    return dict(client.api.create_container_config(**create))


@pytest.mark.parametrize(
    ("where", "twin", "value"),
    [
        ("", "user", ""),  # the image's own user: root
        ("HostConfig", "securityopt", []),
        ("HostConfig", "networkmode", ""),  # the default bridge, around the egress proxy
    ],
)
async def test_a_twin_key_in_another_case_never_reaches_the_engine(
    client: docker.DockerClient,
    guard: Guarded,
    instance: str,
    tmp_path: Path,
    docker_client: docker.DockerClient,
    where: str,
    twin: str,
    value: Any,
) -> None:
    # Docker decodes JSON keys without case, the last twin winning: after the checked
    # "User", an empty "user" would have run the task as root.
    body = _sdk_body(client, task_kwargs(instance, tmp_path / "work"))
    (body[where] if where else body)[twin] = value
    answer = await raw(guard, "POST", "/containers/create", json.dumps(body).encode())
    assert answer.startswith(b"HTTP/1.1 403"), answer[:300]
    assert b"one key to the engine" in answer, answer
    assert containers_of(docker_client, instance) == []


async def test_a_start_cannot_bring_a_host_config_of_its_own(
    client: docker.DockerClient, guard: Guarded, instance: str, tmp_path: Path
) -> None:
    # Below API 1.24 the engine takes a start's body as the container's new HostConfig.
    made = await call(client.containers.create, **task_kwargs(instance, tmp_path / "work"))
    try:
        evil = json.dumps({"Privileged": True, "Binds": ["/:/host"]}).encode()
        old = await raw(guard, "POST", f"/v1.23/containers/{made.id}/start", evil)
        assert old.startswith(b"HTTP/1.1 403") and b"older than v1.24" in old, old[:300]
        new = await raw(guard, "POST", f"/v1.41/containers/{made.id}/start", evil)
        assert new.startswith(b"HTTP/1.1 403") and b"takes no body" in new, new[:300]
        # Nothing started, and it is no more privileged than it was made.
        inspected = await call(client.api.inspect_container, made.id)
        assert inspected["State"]["Status"] == "created"
        assert inspected["HostConfig"]["Privileged"] is False
    finally:
        await call(made.remove, force=True)


async def test_a_head_with_a_bare_line_feed_or_a_bad_length_is_refused(guard: Guarded) -> None:
    injected = b"GET /_ping HTTP/1.1\r\nHost: d\r\nX: 1\nX-Registry-Auth: injected\r\n\r\n"
    answer = await exchange(guard, injected)
    assert answer.startswith(b"HTTP/1.1 400") and b"control characters" in answer, answer
    answer = await exchange(guard, b"GET /_ping HTTP/1.1\r\nHost: d\r\nContent-Length: -5\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400") and b"not a length" in answer, answer
