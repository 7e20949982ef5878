from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import pytest

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
    migrated_database_url: str,
    queue_redis_url: str,
    events_redis_url: str,
    tmp_path: Path,
    engine: docker.DockerClient,
) -> AsyncIterator[System]:
    async with running_system(
        migrated_database_url, queue_redis_url, events_redis_url, tmp_path, engine
    ) as running:
        yield running
