"""Fixtures for the API tests: a real primary with a real streaming replica, and the app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from starlette.applications import Starlette

from core.migrate import migrate, migration_files
from core.settings import Settings
from tests.conftest import eventually
from tests.integration.api.support import (
    new_token,
    running_api,
    settings_for,
)
from tests.integration.replica import PgCluster, start_cluster


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    cluster = start_cluster()
    yield cluster
    cluster.cleanup()


@dataclass(frozen=True)
class ReplicatedDb:
    primary: str
    replica: str


@pytest.fixture
async def replicated_db(pg_cluster: PgCluster) -> AsyncIterator[ReplicatedDb]:
    """A migrated database on the primary, visible on the replica; dropped afterwards."""
    if not pg_cluster.replica.running:  # a test that stopped it failed before restarting it
        pg_cluster.replica.start()
    primary, replica = pg_cluster.create_database()
    await migrate(primary)
    name = primary.rsplit("/", 1)[1]

    # Every migration, not only the first: a test that pauses replay while a later ALTER
    # TABLE's lock is held on the replica would see its reads block.
    last = migration_files()[-1][0]

    async def replica_has_schema() -> bool:
        return pg_cluster.replica_has(
            name,
            f"SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = '{last}')",
        )

    await eventually(replica_has_schema, within=30, message="the schema on the replica")
    yield ReplicatedDb(primary, replica)
    pg_cluster.drop_database(primary)


@dataclass(frozen=True)
class Api:
    app: Starlette
    client: httpx.AsyncClient
    settings: Settings
    db: ReplicatedDb


@pytest.fixture
async def api(
    replicated_db: ReplicatedDb, queue_redis_url: str, events_redis_url: str
) -> AsyncIterator[Api]:
    settings = settings_for(
        replicated_db.primary,
        queue_redis_url,
        events_redis_url,
        database_replica_url=replicated_db.replica,
    )
    async with running_api(settings) as (app, client):
        yield Api(app, client, settings, replicated_db)


@pytest.fixture
async def token(replicated_db: ReplicatedDb) -> str:
    _, plaintext = await new_token(replicated_db.primary, "alice")
    return plaintext


@pytest.fixture
async def other_token(replicated_db: ReplicatedDb) -> str:
    _, plaintext = await new_token(replicated_db.primary, "mallory")
    return plaintext
