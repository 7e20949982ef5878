"""Map tasks through the API: the bounds (422 naming the field and the setting), a job view
that stays small whatever the number of instances, the paged instances, and a re-run."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from databases import Database

from core import transitions as tr
from core.models import AttemptStatus, FailureKind
from tests.integration.api.conftest import Api
from tests.integration.api.support import bearer, row_counts, running_api

pytestmark = pytest.mark.integration

SHELL = {"type": "shell", "payload": {"script": "true"}}


def mapped(map_spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "tasks": [
            {"name": "list", **SHELL},
            {"name": "sq", **SHELL, "map": map_spec, **extra},
            {"name": "sum", **SHELL, "depends_on": ["sq"]},
        ]
    }


REFUSED: list[tuple[dict[str, Any], list[str], str]] = [
    (
        {"over_items": list(range(11))},
        ["map", "over_items"],
        "must have at most 10 items on this deployment (HOMERUN_MAX_MAP_ITEMS; got 11)",
    ),
    (
        {"over": "list", "max_parallel": 11},
        ["map", "max_parallel"],
        "must be at most 10 on this deployment (HOMERUN_MAX_MAP_ITEMS; got 11)",
    ),
    ({"over": "list", "over_items": [1]}, ["map"], "give exactly one of over and over_items"),
    ({"max_parallel": 2}, ["map"], "give exactly one of over and over_items"),
    ({"over": "nope"}, ["map", "over"], "unknown task 'nope'"),
    ({"over": "sq"}, ["depends_on"], "dependency cycle: sq -> sq"),
    ({"over": "list", "max_parallel": 0}, ["map", "max_parallel"], "less than the minimum"),
    ({"over": "list", "width": 3}, ["map"], "Additional properties are not allowed"),
]


async def test_a_map_out_of_bounds_is_refused_and_nothing_is_written(api: Api, token: str) -> None:
    settings = dataclasses.replace(api.settings, max_map_items=10)
    before = await row_counts(api.db.primary)
    async with running_api(settings) as (_, client):
        for spec, loc, says in REFUSED:
            r = await client.post("/v1/jobs", json=mapped(spec), headers=bearer(token))
            assert r.status_code == 422, (spec, r.text)
            details = r.json()["error"]["details"]
            assert details[0]["loc"] == ["body", "tasks", 1, *loc], spec
            assert says in details[0]["msg"], spec
        at_limit = mapped({"over_items": list(range(10)), "max_parallel": 10})
        accepted = await client.post("/v1/jobs", json=at_limit, headers=bearer(token))
        assert accepted.status_code == 201, accepted.text
    after = await row_counts(api.db.primary)
    assert after["jobs"] == before["jobs"] + 1  # only the job at the limit


async def instances(api: Api, token: str, job_id: str, task_id: str, **query: Any) -> Any:
    r = await api.client.get(
        f"/v1/jobs/{job_id}/tasks/{task_id}/instances", params=query, headers=bearer(token)
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_the_job_view_shows_counts_and_instances_are_paged(
    api: Api, token: str, other_token: str
) -> None:
    items = [{"n": i} for i in range(3000)]
    r = await api.client.post(
        "/v1/jobs",
        json=mapped({"over_items": items, "max_parallel": 5}),
        headers=bearer(token),
    )
    assert r.status_code == 201, r.text
    job = r.json()
    tasks = {t["name"]: t for t in job["tasks"]}
    assert list(tasks) == ["list", "sq", "sum"]  # no instance in the job's view
    sq = tasks["sq"]
    assert sq["status"] == "running"
    assert sq["map"] == {
        "over": None,
        "over_items": 3000,
        "max_parallel": 5,
        "instances": 3000,
        "counts": {"queued": 5, "pending": 2995},
    }
    read = await api.client.get(f"/v1/jobs/{job['id']}", headers=bearer(token))
    assert read.status_code == 200 and len(read.content) < 8000  # not 3000 instances
    assert len(r.content) < 8000

    # Every instance, a page at a time, in item order.
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        query: dict[str, Any] = {"limit": 1000}
        if cursor is not None:
            query["cursor"] = cursor
        page = await instances(api, token, job["id"], sq["id"], **query)
        seen += page["instances"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert [i["index"] for i in seen] == list(range(3000))
    assert seen[7]["item"] == {"n": 7} and seen[7]["name"] == "sq[7]"
    queued = await instances(api, token, job["id"], sq["id"], status="queued")
    assert [i["index"] for i in queued["instances"]] == [0, 1, 2, 3, 4]

    # One instance is a task of its own.
    detail = await api.client.get(
        f"/v1/jobs/{job['id']}/tasks/{seen[7]['id']}", headers=bearer(token)
    )
    assert detail.status_code == 200
    assert detail.json()["map_of"] == "sq" and detail.json()["map_index"] == 7

    # Not a map, another token's, a malformed cursor.
    not_map = await api.client.get(
        f"/v1/jobs/{job['id']}/tasks/{tasks['sum']['id']}/instances", headers=bearer(token)
    )
    assert not_map.status_code == 404
    theirs = await api.client.get(
        f"/v1/jobs/{job['id']}/tasks/{sq['id']}/instances", headers=bearer(other_token)
    )
    assert theirs.status_code == 404
    bad = await api.client.get(
        f"/v1/jobs/{job['id']}/tasks/{sq['id']}/instances",
        params={"cursor": "bm9wZQ"},
        headers=bearer(token),
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_cursor"


async def test_a_failed_map_is_rerun_whole_from_failed(api: Api, token: str) -> None:
    r = await api.client.post(
        "/v1/jobs",
        json=mapped({"over": "list", "max_parallel": 2}, max_attempts=1),
        headers=bearer(token),
    )
    assert r.status_code == 201, r.text
    job = r.json()
    db = Database(api.db.primary)
    await db.connect()
    try:
        ids = {t["name"]: t["id"] for t in job["tasks"]}
        claim = await tr.claim_attempt(db, ids["list"], runner_id="r", lease_seconds=9)
        assert claim is not None
        after = await tr.finish_attempt(
            db, claim.task_id, 1, tr.Outcome(AttemptStatus.SUCCEEDED, output=[10, 20, 30])
        )
        first = await tr.claim_attempt(db, after.ready[0].task_id, runner_id="r", lease_seconds=9)
        assert first is not None
        boom = tr.Outcome(AttemptStatus.FAILED, error="boom", failure_kind=FailureKind.TASK)
        after = await tr.finish_attempt(db, first.task_id, 1, boom)
        # sq[1] was queued, not started: it is cancelled, and the job ends here.
        assert after.ready == [] and after.job_status is not None
    finally:
        await db.disconnect()
    done = (await api.client.get(f"/v1/jobs/{job['id']}", headers=bearer(token))).json()
    assert done["status"] == "failed"
    sq = next(t for t in done["tasks"] if t["name"] == "sq")
    assert sq["error"] == "instance sq[0] failed: boom"

    rerun = await api.client.post(
        f"/v1/jobs/{job['id']}/rerun", params={"from": "failed"}, headers=bearer(token)
    )
    assert rerun.status_code == 201, rerun.text
    tasks = {t["name"]: t for t in rerun.json()["tasks"]}
    assert list(tasks) == ["list", "sq", "sum"]
    assert tasks["list"]["status"] == "succeeded" and tasks["list"]["reused_from"] is not None
    # The map runs again whole over the taken-over list: three instances, two at once.
    assert tasks["sq"]["map"]["counts"] == {"queued": 2, "pending": 1}
    assert tasks["sq"]["map"]["max_parallel"] == 2 and tasks["sq"]["map"]["over"] == "list"
