"""`make up` with a registry of your own (``HOMERUN_REGISTRY``), on the real single-node Swarm.

up.sh pushes the images it built to that registry and deploys every service from it,
pinned by digest; the runner is told the registry (HOMERUN_TASK_IMAGE_REGISTRY) and pulls
the sample job's task image from it, since the push leaves no such name on the engine.
The registry is Debian's ``docker-registry`` on a loopback port (trusted without TLS).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from stack.topology import DEFAULT_TAG, IMAGE_NAMES, SERVICE_KEYS
from tests.conftest import free_port
from tests.e2e.conftest import NAMESPACE, ROOT, UP_TIMEOUT_S, run_script, tear_down
from tests.registry import Registry, running_registry


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    with running_registry(tmp_path / "registry") as reg:
        yield reg


def _images_named(client: docker.DockerClient, prefix: str) -> list[str]:
    return [t for image in client.images.list() for t in image.tags if t.startswith(prefix)]


def test_make_up_deploys_from_your_registry_and_the_runner_pulls_from_it(
    docker_client: docker.DockerClient, registry: Registry
) -> None:
    name = f"hrreg{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "HOMERUN_STACK": name,
        "HOMERUN_API_PORT": str(free_port()),
        "HOMERUN_UP_TIMEOUT": str(UP_TIMEOUT_S),
        "HOMERUN_REGISTRY": registry.addr,
        "HOMERUN_SKIP_IMAGES": "1",  # scripts/test.sh built them
        "HOMERUN_COMPOSE_ARGS": "--api-replicas 1 --runner-replicas 1 --runner-concurrency 2",
    }
    ours = f"{registry.addr}/"
    assert not _images_named(docker_client, ours)
    try:
        up = run_script("up.sh", env, UP_TIMEOUT_S + 300)
        assert up.returncode == 0, up.stderr[-6000:]
        assert "sample job succeeded" in up.stderr

        # Every homerun image went to the registry ...
        assert sorted(registry.repositories()) == sorted(f"homerun/{i}" for i in IMAGE_NAMES)
        # ... every service runs one from it, pinned to its digest ...
        services = docker_client.services.list(filters={"label": f"{NAMESPACE}={name}"})
        assert len(services) == len(SERVICE_KEYS)
        for svc in services:
            spec = svc.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
            assert spec["Image"].startswith(f"{ours}homerun/"), (svc.name, spec["Image"])
            assert "@sha256:" in spec["Image"], (svc.name, spec["Image"])
            if svc.name == f"{name}_runner":
                assert f"HOMERUN_TASK_IMAGE_REGISTRY={registry.addr}" in spec["Env"]
        # ... and the sample job's task image was pulled from it by the runner: the push
        # untagged what it pushed, so only a pull names it on the engine.
        manifest = f"/v2/homerun/task-shell/manifests/{DEFAULT_TAG}"
        assert registry.requests_for(manifest), "the runner never asked for the task image"
        assert f"{ours}homerun/task-shell:{DEFAULT_TAG}" in _images_named(docker_client, ours)
    finally:
        try:
            tear_down(docker_client, name, env)
        finally:
            shutil.rmtree(ROOT / ".homerun" / "stacks" / name, ignore_errors=True)
            # Tags of images pulled from this test's registry (its port is its own); the
            # images stay while homerun/* names them.
            for tag in _images_named(docker_client, ours):
                docker_client.images.remove(tag)
