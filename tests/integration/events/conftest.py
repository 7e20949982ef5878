from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from core.settings import Settings
from tests.harness.services import ServiceProcess, Services
from tests.integration.events.harness import tuned_for_events


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return tuned_for_events(settings)


@pytest.fixture
def api(settings: Settings, services: Services) -> ServiceProcess:
    return services.api(settings)


@pytest.fixture
async def streams(events_redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(events_redis_url, decode_responses=True)
    yield client
    await client.aclose()
