"""Fixtures shared by every test: private Postgres databases and Redis servers.

Each test session gets its own Redis servers on free ports and each test module its own
database, so suites run side by side on one machine never see each other's data. The
helpers themselves live in ``tests.harness`` (bench uses them too); ``free_port``,
``wait_for``, ``eventually`` and ``RedisServer`` are importable from here as before.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.harness.stores import PG_ADMIN_DSN, RedisServer, private_database
from tests.harness.waiting import eventually, free_port, wait_for

__all__ = ["PG_ADMIN_DSN", "RedisServer", "eventually", "free_port", "wait_for"]


@pytest.fixture(scope="session")
def queue_redis_server() -> Iterator[RedisServer]:
    server = RedisServer("queue")
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def events_redis_server() -> Iterator[RedisServer]:
    server = RedisServer("events")
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def queue_redis_url(queue_redis_server: RedisServer) -> Iterator[str]:
    if queue_redis_server.proc is None:
        queue_redis_server.start()
    client = redis.Redis.from_url(queue_redis_server.url)
    client.flushall()
    client.close()
    yield queue_redis_server.url


@pytest.fixture
def events_redis_url(events_redis_server: RedisServer) -> Iterator[str]:
    if events_redis_server.proc is None:
        events_redis_server.start()
    client = redis.Redis.from_url(events_redis_server.url)
    client.flushall()
    client.close()
    yield events_redis_server.url


@pytest.fixture
def database_url() -> Iterator[str]:
    """A fresh, empty database on the machine's Postgres; dropped afterwards."""
    with private_database() as url:
        yield url


@pytest.fixture
async def migrated_database_url(database_url: str) -> str:
    from core.migrate import migrate

    await migrate(database_url)
    return database_url
