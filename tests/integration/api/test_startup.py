"""Two API processes started at once on an empty database: both come up, migrations run once."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx
import pytest

from core.migrate import migration_files
from tests.conftest import free_port, wait_for

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "hr_startup-test-admin"


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_two_api_processes_start_together(
    database_url: str, queue_redis_url: str, events_redis_url: str, tmp_path: Path
) -> None:
    secret = tmp_path / "admin_token"
    secret.write_text(ADMIN_TOKEN + "\n")
    ports = [free_port(), free_port()]
    procs = []
    logs = []
    for i, port in enumerate(ports):
        env = {
            **os.environ,
            "HOMERUN_DATABASE_URL": database_url,
            "HOMERUN_QUEUE_REDIS_URL": queue_redis_url,
            "HOMERUN_EVENTS_REDIS_URL": events_redis_url,
            "HOMERUN_HOST": "127.0.0.1",
            "HOMERUN_PORT": str(port),
            "HOMERUN_ADMIN_TOKEN_FILE": str(secret),
        }
        log = (tmp_path / f"api{i}.log").open("w+")
        logs.append(log)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "core.server"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        )
    try:
        for port, proc in zip(ports, procs, strict=True):
            wait_for(
                lambda port=port, proc=proc: proc.poll() is None and _ready(port),
                timeout=60,
                message=f"the API on :{port} to be ready",
            )
            r = httpx.get(
                f"http://127.0.0.1:{port}/v1/task-types",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
            assert r.status_code == 200
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(30) for proc in procs]
    output = []
    for log in logs:
        log.seek(0)
        output.append(log.read())
        log.close()
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
