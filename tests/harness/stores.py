"""Private data stores: a redis-server on a free port, a database on the machine's Postgres.

Each suite (and each bench run) gets stores of its own, so runs side by side on one machine
never see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import redis

from tests.harness.waiting import free_port, wait_for

# Where the tests' own databases are created; a test setting, not one of homerun's.
PG_ADMIN_DSN = os.environ.get(
    "HOMERUN_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


class RedisServer:
    """A private redis-server on a free port, without persistence: a restart empties it.

    ``args`` are more ``redis-server`` options (``("--maxmemory", "4mb")``)."""

    def __init__(self, name: str, args: Sequence[str] = ()) -> None:
        self.name = name
        self.args = tuple(args)
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
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        try:
            wait_for(client.ping, message=f"redis {self.name} to answer")
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def redis_server(name: str, args: Sequence[str] = ()) -> Iterator[RedisServer]:
    """A started ``RedisServer``, stopped and its directory removed on exit."""
    server = RedisServer(name, args)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


async def admin(sql: str) -> None:
    """One statement on the admin database (CREATE/DROP DATABASE cannot run in a pool)."""
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def private_database(prefix: str = "homerun_test") -> Iterator[str]:
    """The URL of a fresh, empty database ``<prefix>_<random>``; dropped (connections
    and all) on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
