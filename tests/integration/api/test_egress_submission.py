"""A task asking for network egress, over HTTP: a 422 with the reason unless the deployment
enables egress, and then accepted and stored as asked (core/egress.py)."""

from __future__ import annotations

import dataclasses

import asyncpg
import pytest

from core.tokens import hash_token
from tests.integration.api.conftest import Api
from tests.integration.api.support import bearer, row_counts, running_api

pytestmark = pytest.mark.integration

EGRESS_JOB = {
    "tasks": [{"type": "shell", "payload": {"script": "true"}, "network": "egress"}],
}


async def test_egress_is_refused_unless_enabled_and_stored_when_it_is(api: Api, token: str) -> None:
    before = await row_counts(api.db.primary)
    r = await api.client.post("/v1/jobs", json=EGRESS_JOB, headers=bearer(token))
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["details"] == [
        {
            "loc": ["body", "tasks", 0, "network"],
            "msg": "network egress is not enabled on this deployment"
            " (HOMERUN_ALLOW_TASK_NETWORK=false): tasks get no network",
        }
    ]
    assert (await row_counts(api.db.primary))["tasks"] == before["tasks"]
    enabled = dataclasses.replace(
        api.settings,
        allow_task_network=True,
        egress_network="homerun_egress",
        egress_proxy_url="http://egress-proxy:3128",
        egress_allow=("api.example.com",),
    )
    async with running_api(enabled) as (_, client):
        accepted = await client.post("/v1/jobs", json=EGRESS_JOB, headers=bearer(token))
        assert accepted.status_code == 201, accepted.text
        plain = await client.post(
            "/v1/jobs",
            json={"tasks": [{"type": "shell", "payload": {"script": "true"}}]},
            headers=bearer(token),
        )
        assert plain.status_code == 201, plain.text
        schema = (await client.get("/openapi.json")).json()
    conn = await asyncpg.connect(api.db.primary)
    try:
        stored = await conn.fetch(
            "SELECT job_id, network FROM tasks WHERE job_id = ANY($1::uuid[])",
            [accepted.json()["id"], plain.json()["id"]],
        )
    finally:
        await conn.close()
    assert {str(r["job_id"]): r["network"] for r in stored} == {
        accepted.json()["id"]: "egress",
        plain.json()["id"]: "none",
    }
    items = schema["components"]["schemas"]["JobSubmission"]["properties"]["tasks"]
    task = next(b for b in items["items"]["oneOf"] if b["title"] == "shell task")
    assert task["properties"]["network"]["enum"] == ["none", "egress"]


async def test_a_token_whose_own_egress_list_is_empty_is_refused_egress(
    api: Api, token: str
) -> None:
    enabled = dataclasses.replace(
        api.settings,
        allow_task_network=True,
        egress_network="homerun_egress",
        egress_proxy_url="http://egress-proxy:3128",
        egress_allow=("api.example.com",),
    )
    conn = await asyncpg.connect(api.db.primary)
    try:
        await conn.execute(
            "UPDATE tokens SET egress_allow = '{}' WHERE hash = $1", hash_token(token)
        )
        async with running_api(enabled) as (_, client):
            refused = await client.post("/v1/jobs", json=EGRESS_JOB, headers=bearer(token))
            plain = await client.post(
                "/v1/jobs",
                json={"tasks": [{"type": "shell", "payload": {"script": "true"}}]},
                headers=bearer(token),
            )
            await conn.execute(
                "UPDATE tokens SET egress_allow = '{api.example.com:443}' WHERE hash = $1",
                hash_token(token),
            )
            narrowed = await client.post("/v1/jobs", json=EGRESS_JOB, headers=bearer(token))
    finally:
        await conn.execute(
            "UPDATE tokens SET egress_allow = NULL WHERE hash = $1", hash_token(token)
        )
        await conn.close()
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["details"] == [
        {
            "loc": ["body", "tasks", 0, "network"],
            "msg": "this token may not use network egress: its egress allow-list is empty"
            " (homerun token egress)",
        }
    ]
    # Only egress is closed to it, and a narrowed (not empty) list is no reason to refuse.
    assert plain.status_code == 201, plain.text
    assert narrowed.status_code == 201, narrowed.text
