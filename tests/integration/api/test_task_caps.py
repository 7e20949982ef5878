"""The operator's caps on what a submission may ask of a task: priority, time-out, attempts.

A client picks these freely, so without a cap one token could ask for day-long time-outs
and many retries at the top priority and hold runner slots for as long as it likes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tests.integration.api.conftest import Api
from tests.integration.api.support import bearer, row_counts, running_api

pytestmark = pytest.mark.integration


def shell(**extra: Any) -> dict[str, Any]:
    return {"tasks": [{"type": "shell", "payload": {"script": "true"}, **extra}]}


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("priority", 51, "at most 50 on this deployment (HOMERUN_MAX_TASK_PRIORITY; got 51)"),
        ("priority", -51, "at least -50 on this deployment (HOMERUN_MAX_TASK_PRIORITY; got -51)"),
        (
            "timeout_s",
            86400,
            "at most 3600 on this deployment (HOMERUN_MAX_TASK_TIMEOUT_SECONDS; got 86400)",
        ),
        ("max_attempts", 6, "at most 5 on this deployment (HOMERUN_MAX_TASK_ATTEMPTS; got 6)"),
    ],
)
async def test_a_task_beyond_a_cap_is_refused_naming_the_field_and_the_limit(
    api: Api, token: str, field: str, value: int, says: str
) -> None:
    settings = dataclasses.replace(
        api.settings, max_task_priority=50, max_task_timeout_seconds=3600, max_task_attempts=5
    )
    before = await row_counts(api.db.primary)
    async with running_api(settings) as (_, client):
        r = await client.post("/v1/jobs", json=shell(**{field: value}), headers=bearer(token))
        assert r.status_code == 422, r.text
        body = r.json()["error"]
        assert body["code"] == "validation_error"
        assert body["details"] == [{"loc": ["body", "tasks", 0, field], "msg": f"must be {says}"}]
        assert body["message"] == f"body.tasks.0.{field}: must be {says}"
        # At the limit is fine.
        ok = {"priority": -50, "timeout_s": 3600, "max_attempts": 5}
        accepted = await client.post("/v1/jobs", json=shell(**ok), headers=bearer(token))
        assert accepted.status_code == 201, accepted.text
        # The published schema states the deployment's ranges.
        schema = (await client.get("/openapi.json")).json()
        items = schema["components"]["schemas"]["JobSubmission"]["properties"]["tasks"]
        task = next(b for b in items["items"]["oneOf"] if b["title"] == "shell task")
        task = task["properties"]
    assert task["priority"]["minimum"] == -50 and task["priority"]["maximum"] == 50
    assert task["timeout_s"]["maximum"] == 3600 and task["max_attempts"]["maximum"] == 5
    after = await row_counts(api.db.primary)
    assert after["tasks"] == before["tasks"] + 1  # only the accepted job was written


async def test_without_caps_the_built_in_ranges_hold(api: Api, token: str) -> None:
    r = await api.client.post("/v1/jobs", json=shell(priority=401), headers=bearer(token))
    assert r.status_code == 422
    assert "HOMERUN_MAX_TASK_PRIORITY" in r.json()["error"]["details"][0]["msg"]
    r = await api.client.post(
        "/v1/jobs",
        json=shell(priority=400, timeout_s=86400, max_attempts=20),
        headers=bearer(token),
    )
    assert r.status_code == 201, r.text
