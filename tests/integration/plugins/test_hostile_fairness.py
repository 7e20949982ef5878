"""The hostile suite's fair-share attack (#12 item 7), over HTTP against real processes.

One token fills the runner with day-long, top-priority tasks; another token's task must
still run. The stack shares its runner between tokens the way an operator would set it:
``HOMERUN_MAX_RUNNING_PER_TOKEN`` below the runner's slots.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from databases import Database

from core.tokens import create_token
from tests.conftest import wait_for
from tests.harness.services import Services
from tests.harness.stack import Stack, instance_containers, private_stack
from tests.integration.plugins.conftest import submit, wait_job

pytestmark = pytest.mark.integration

SLOTS = 3


@pytest.fixture(scope="module")
def stack(module_services: Services) -> Iterator[Stack]:
    with private_stack(
        "test-fairness",
        commands=("api", "runner"),
        services=module_services,
        runner_concurrency=SLOTS,
        max_running_per_token=SLOTS - 1,
        shutdown_grace_seconds=5.0,
    ) as running:
        yield running


def client(stack: Stack, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=stack.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def new_token(stack: Stack) -> str:
    async def make() -> str:
        db = Database(stack.settings.database_url)
        await db.connect()
        try:
            _, plaintext = await create_token(db, "victim")
            return plaintext
        finally:
            await db.disconnect()

    return asyncio.run(make())


def statuses(api: httpx.Client, job_id: str) -> list[str]:
    return [t["status"] for t in api.get(f"/v1/jobs/{job_id}").json()["tasks"]]


def test_day_long_top_priority_tasks_cannot_hold_every_slot(stack: Stack) -> None:
    with client(stack, stack.token) as attacker, client(stack, new_token(stack)) as victim:
        flood = submit(
            attacker,
            *(
                {
                    "name": f"hog-{i}",
                    "type": "shell",
                    "payload": {"script": "sleep 86400"},
                    "priority": 400,
                    "timeout_s": 86400,
                }
                for i in range(SLOTS + 2)
            ),
        )
        wait_for(
            lambda: statuses(attacker, flood).count("running") == SLOTS - 1,
            timeout=30,
            message="the flood to take its capped share",
        )
        late = submit(victim, {"type": "shell", "payload": {"script": "echo served"}})
        job = wait_job(victim, late, timeout=30)
        assert job["status"] == "succeeded"
        # It ran while the flood still held its share and nothing of it had finished.
        assert sorted(set(statuses(attacker, flood))) == ["queued", "running"]
        assert statuses(attacker, flood).count("running") == SLOTS - 1
        assert attacker.post(f"/v1/jobs/{flood}/cancel").status_code in (200, 202)
        wait_job(attacker, flood, timeout=30)
    stack.processes["runner"].check()
    wait_for(lambda: not instance_containers(stack.instance), timeout=15, message="cleanup")
