from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import pytest

from core.settings import Settings
from tests.harness.services import Services
from tests.integration.cli.support import SHELL_IMAGE, System, running_system


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    try:
        client.images.get(SHELL_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{SHELL_IMAGE} is missing: run `make images` first")
    yield client
    client.close()


@pytest.fixture
async def system(
    settings: Settings, services: Services, tmp_path: Path, engine: docker.DockerClient
) -> AsyncIterator[System]:
    async with running_system(settings, services, tmp_path) as running:
        yield running
