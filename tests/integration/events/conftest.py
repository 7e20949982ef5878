from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from databases import Database

from core.settings import Settings
from tests.integration.events.harness import ApiProcess, api_process, settings_for


@pytest.fixture
async def db(migrated_database_url: str) -> AsyncIterator[Database]:
    database = Database(migrated_database_url)
    await database.connect()
    yield database
    await database.disconnect()


@pytest.fixture
def settings(migrated_database_url: str, queue_redis_url: str, events_redis_url: str) -> Settings:
    return settings_for(migrated_database_url, queue_redis_url, events_redis_url)


@pytest.fixture
def api(settings: Settings, tmp_path: Path) -> Iterator[ApiProcess]:
    with api_process(settings, tmp_path / "api.log") as running:
        yield running


@pytest.fixture
async def streams(events_redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(events_redis_url, decode_responses=True)
    yield client
    await client.aclose()
