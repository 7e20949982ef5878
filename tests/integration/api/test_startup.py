"""Two API processes started at once on an empty database: both come up, migrations run once."""

from __future__ import annotations

import asyncio
import re
import signal

import asyncpg
import httpx
import pytest

from core.migrate import migration_files
from tests.conftest import wait_for
from tests.harness.services import ServiceProcess, Services
from tests.harness.settings import settings_for

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "hr_startup-test-admin"


def _ready(api: ServiceProcess) -> bool:
    try:
        return httpx.get(f"{api.url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_two_api_processes_start_together(
    database_url: str, queue_redis_url: str, events_redis_url: str, services: Services
) -> None:
    # The admin token reaches both processes as a secret file, the way Swarm hands it over.
    settings = settings_for(
        database_url, queue_redis_url, events_redis_url, admin_token=ADMIN_TOKEN
    )
    apis = [services.api(settings, wait=False) for _ in range(2)]
    try:
        for api in apis:

            def ready(api: ServiceProcess = api) -> bool:
                return api.alive and _ready(api)

            wait_for(
                ready,
                timeout=60,
                message=f"the API on {api.url} to be ready",
            )
            r = httpx.get(
                f"{api.url}/v1/task-types",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
            assert r.status_code == 200
    finally:
        for api in apis:
            api.terminate()
        codes = [api.stop() for api in apis]
    output = [api.output() for api in apis]
    # uvicorn re-raises the SIGTERM it handled once shutdown completed, so -15 is clean.
    assert all(code in (0, -signal.SIGTERM) for code in codes), (codes, output)
    for text in output:
        assert "Application shutdown complete" in text, text
        assert "Traceback" not in text and " ERROR " not in text, text

    # Each migration was applied by exactly one of the two processes.
    applied: list[str] = []
    for text in output:
        match = re.search(r"migrations applied by this process: (.*)", text)
        assert match, text
        if match.group(1) != "none":
            applied += match.group(1).split(", ")
    versions = [version for version, _ in migration_files()]
    assert sorted(applied) == versions

    recorded, admins = asyncio.run(_schema_state(database_url))
    assert recorded == versions
    assert admins == 1


async def _schema_state(dsn: str) -> tuple[list[str], int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        admins = await conn.fetchval("SELECT count(*) FROM tokens WHERE is_admin")
    finally:
        await conn.close()
    return [r["version"] for r in rows], int(admins)
