"""Per-task resources and runner groups at submission: the operator's maxima, the label
sets the deployment's groups have, and what a queued task says it waits for."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tests.integration.api.conftest import Api
from tests.integration.api.support import bearer, row_counts, running_api

pytestmark = pytest.mark.integration

GROUPS = ("runner=", "big=bigdisk", "gpu=gpu+bigdisk")


def shell(**extra: Any) -> dict[str, Any]:
    return {"tasks": [{"type": "shell", "payload": {"script": "true"}, **extra}]}


@pytest.mark.parametrize(
    ("resources", "field", "says"),
    [
        (
            {"cpus": 2.5},
            "cpus",
            "must be at most 2.0 on this deployment (HOMERUN_MAX_TASK_CPUS; got 2.5)",
        ),
        (
            {"cpus": 1, "memory_mb": 1025},
            "memory_mb",
            "must be at most 1024 on this deployment (HOMERUN_MAX_TASK_MEMORY_MB; got 1025)",
        ),
    ],
)
async def test_resources_above_the_operators_maxima_are_refused_saying_the_maximum(
    api: Api, token: str, resources: dict[str, Any], field: str, says: str
) -> None:
    settings = dataclasses.replace(api.settings, max_task_cpus=2.0, max_task_memory_mb=1024)
    before = await row_counts(api.db.primary)
    async with running_api(settings) as (_, client):
        r = await client.post("/v1/jobs", json=shell(resources=resources), headers=bearer(token))
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["details"] == [{"loc": ["body", "tasks", 0, "resources", field], "msg": says}]
        # At the maxima is fine; the published schema states them.
        at_max = {"cpus": 2.0, "memory_mb": 1024}
        ok = await client.post("/v1/jobs", json=shell(resources=at_max), headers=bearer(token))
        assert ok.status_code == 201, ok.text
        schema = (await client.get("/openapi.json")).json()
    items = schema["components"]["schemas"]["JobSubmission"]["properties"]["tasks"]["items"]
    task = next(b for b in items["oneOf"] if b["title"] == "shell task")["properties"]
    assert task["resources"]["properties"]["cpus"]["maximum"] == 2.0
    assert task["resources"]["properties"]["memory_mb"]["maximum"] == 1024
    assert (await row_counts(api.db.primary))["tasks"] == before["tasks"] + 1


@pytest.mark.parametrize(
    "resources",
    [{"cpus": 0}, {"cpus": "2"}, {"memory_mb": 8}, {"memory_mb": 1.5}, {"disk_mb": 1}],
)
async def test_malformed_resources_are_refused(
    api: Api, token: str, resources: dict[str, Any]
) -> None:
    r = await api.client.post("/v1/jobs", json=shell(resources=resources), headers=bearer(token))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["loc"][:4] == ["body", "tasks", 0, "resources"]


async def test_a_task_no_group_can_take_is_refused_listing_the_groups(api: Api, token: str) -> None:
    settings = dataclasses.replace(api.settings, runner_groups=GROUPS)
    before = await row_counts(api.db.primary)
    async with running_api(settings) as (_, client):
        r = await client.post("/v1/jobs", json=shell(runs_on=["gpu"]), headers=bearer(token))
        # gpu alone exists (in the gpu group): accepted. gpu with ssd exists nowhere.
        assert r.status_code == 201, r.text
        r = await client.post("/v1/jobs", json=shell(runs_on=["gpu", "ssd"]), headers=bearer(token))
        assert r.status_code == 422, r.text
        [detail] = r.json()["error"]["details"]
        assert detail == {
            "loc": ["body", "tasks", 0, "runs_on"],
            "msg": "no runner group of this deployment has all of the labels [gpu, ssd]"
            " (groups: runner []; big [bigdisk]; gpu [bigdisk, gpu]; HOMERUN_RUNNER_GROUPS)",
        }
        bad = await client.post("/v1/jobs", json=shell(runs_on=["Big Disk"]), headers=bearer(token))
        assert bad.status_code == 422
        assert bad.json()["error"]["details"][0]["loc"] == ["body", "tasks", 0, "runs_on", 0]
    assert (await row_counts(api.db.primary))["tasks"] == before["tasks"] + 1
    # The default deployment has one group without labels: any runs_on is refused.
    r = await api.client.post("/v1/jobs", json=shell(runs_on=["bigdisk"]), headers=bearer(token))
    assert r.status_code == 422
    assert "(groups: runner [];" in r.json()["error"]["message"]


async def test_a_queued_task_says_what_it_waits_for_and_shows_what_it_asked(
    api: Api, token: str
) -> None:
    settings = dataclasses.replace(api.settings, runner_groups=GROUPS)
    async with running_api(settings) as (_, client):
        body = {
            "tasks": [
                {
                    "name": "big",
                    "type": "shell",
                    "payload": {"script": "true"},
                    "runs_on": ["bigdisk", "gpu"],
                    "resources": {"cpus": 0.5, "memory_mb": 512},
                },
                {"name": "plain", "type": "shell", "payload": {"script": "true"}},
            ]
        }
        r = await client.post("/v1/jobs", json=body, headers=bearer(token))
        assert r.status_code == 201, r.text
        job = (await client.get(f"/v1/jobs/{r.json()['id']}", headers=bearer(token))).json()
        tasks = {t["name"]: t for t in job["tasks"]}
        # No runner runs here: the task stays queued and says for what.
        assert tasks["big"]["status"] == "queued"
        assert tasks["big"]["runs_on"] == ["bigdisk", "gpu"]
        assert tasks["big"]["resources"] == {"cpus": 0.5, "memory_mb": 512}
        assert tasks["big"]["waiting_for"] == "waiting for a runner with labels [bigdisk, gpu]"
        # What asks for nothing shows nothing asked: its task type's size, any runner.
        assert tasks["plain"]["runs_on"] == []
        assert tasks["plain"]["resources"] == {"cpus": None, "memory_mb": None}
        assert tasks["plain"]["waiting_for"] == "waiting for a runner"
        detail = await client.get(
            f"/v1/jobs/{job['id']}/tasks/{tasks['big']['id']}", headers=bearer(token)
        )
        assert detail.json()["waiting_for"] == tasks["big"]["waiting_for"]
