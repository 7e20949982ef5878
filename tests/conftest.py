"""Fixtures shared by every test: private Postgres databases and Redis servers.

Each test session gets its own Redis servers on free ports and each test module its own
database, so suites run side by side on one machine never see each other's data.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis

PG_ADMIN_DSN = os.environ.get(
    "HOMERUN_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition, timeout: float = 10.0, interval: float = 0.02, message: str = ""):  # type: ignore[no-untyped-def]
    """Poll ``condition`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {message or condition}"
    ) from last_exc


async def eventually(
    condition: Callable[[], Any],
    within: float = 15.0,
    message: str = "",
    interval: float = 0.02,
) -> Any:
    """The async twin of ``wait_for``: polls a plain or async condition without blocking
    the event loop; fails after ``within`` seconds."""
    deadline = time.monotonic() + within
    last_exc: BaseException | None = None
    while True:
        try:
            value = condition()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
        except Exception as exc:  # keep polling until the deadline
            last_exc = exc
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {within}s waiting for {message or condition}"
            ) from last_exc
        await asyncio.sleep(interval)


class RedisServer:
    """A private redis-server on a free port, for one test session."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"homerun-redis-{name}-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        wait_for(lambda: client.ping(), message=f"redis {self.name} to answer")
        client.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


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


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def database_url() -> Iterator[str]:
    """A fresh, empty database on the machine's Postgres; dropped afterwards."""
    import asyncio

    name = f"homerun_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def migrated_database_url(database_url: str) -> str:
    from core.migrate import migrate

    await migrate(database_url)
    return database_url
