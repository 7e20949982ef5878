"""The schedule API against a real primary, streaming replica and queue Redis."""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from typing import Any

import pytest

from tests.integration.api.conftest import Api
from tests.integration.api.support import bearer

pytestmark = pytest.mark.integration

JOB = {"tasks": [{"name": "a", "type": "shell", "payload": {"script": "echo hi"}}]}


def schedule(**changes: Any) -> dict[str, Any]:
    return {
        "name": "nightly",
        "cron": "30 2 * * *",
        "timezone": "Europe/Berlin",
        "job": JOB,
        **changes,
    }


async def test_create_read_change_delete(api: Api, token: str) -> None:
    h = bearer(token)
    response = await api.client.post("/v1/schedules", json=schedule(overlap="forbid"), headers=h)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["overlap"] == "forbid" and created["catchup"] == "none"
    assert created["paused"] is False and created["recent_ticks"] == []
    fire = [datetime.fromisoformat(t) for t in created["next_fire_times"]]
    assert len(fire) == 5 and fire == sorted(fire)
    assert all(t.utcoffset() is not None and t.hour in (0, 1) for t in fire)  # 02:30 Berlin
    sid = created["id"]
    got = (await api.client.get(f"/v1/schedules/{sid}", headers=h)).json()
    assert got == created
    listed = (await api.client.get("/v1/schedules", headers=h)).json()
    assert [s["id"] for s in listed["schedules"]] == [sid] and listed["next_cursor"] is None

    changed = await api.client.patch(
        f"/v1/schedules/{sid}", json={"cron": "@hourly", "timezone": "UTC"}, headers=h
    )
    assert changed.status_code == 200, changed.text
    hourly = [datetime.fromisoformat(t) for t in changed.json()["next_fire_times"]]
    assert all(t.minute == 0 and t.second == 0 for t in hourly)
    assert [(b - a).total_seconds() for a, b in itertools.pairwise(hourly)] == [3600] * 4

    paused = await api.client.post(f"/v1/schedules/{sid}/pause", headers=h)
    assert paused.status_code == 200 and paused.json()["paused"] is True
    resumed = await api.client.post(f"/v1/schedules/{sid}/resume", headers=h)
    assert resumed.status_code == 200 and resumed.json()["paused"] is False

    assert (await api.client.delete(f"/v1/schedules/{sid}", headers=h)).status_code == 204
    assert (await api.client.get(f"/v1/schedules/{sid}", headers=h)).status_code == 404


async def test_trigger_makes_a_job_listed_by_schedule(api: Api, token: str) -> None:
    h = bearer(token)
    sid = (await api.client.post("/v1/schedules", json=schedule(paused=True), headers=h)).json()[
        "id"
    ]
    response = await api.client.post(f"/v1/schedules/{sid}/trigger", headers=h)
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["schedule_id"] == sid and job["scheduled_for"] is not None
    assert [t["status"] for t in job["tasks"]] == ["queued"]
    await api.client.post("/v1/jobs", json=JOB, headers=h)  # not the schedule's
    listed = (await api.client.get(f"/v1/jobs?schedule={sid}", headers=h)).json()
    assert [j["id"] for j in listed["jobs"]] == [job["id"]]
    (tick,) = (await api.client.get(f"/v1/schedules/{sid}", headers=h)).json()["recent_ticks"]
    assert tick["manual"] is True and tick["outcome"] == "created"
    assert tick["job_id"] == job["id"] and tick["tick"] == job["scheduled_for"]
    # Deleting the schedule keeps its jobs.
    await api.client.delete(f"/v1/schedules/{sid}", headers=h)
    kept = (await api.client.get(f"/v1/jobs/{job['id']}", headers=h)).json()
    assert kept["schedule_id"] is None
    bad = await api.client.get("/v1/jobs?schedule=nope", headers=h)
    assert bad.status_code == 400 and bad.json()["error"]["details"][0]["loc"] == [
        "query",
        "schedule",
    ]


async def test_another_tokens_schedule_is_not_found(api: Api, token: str, other_token: str) -> None:
    sid = (await api.client.post("/v1/schedules", json=schedule(), headers=bearer(token))).json()[
        "id"
    ]
    mallory = bearer(other_token)
    for method, path in [
        ("GET", f"/v1/schedules/{sid}"),
        ("PATCH", f"/v1/schedules/{sid}"),
        ("DELETE", f"/v1/schedules/{sid}"),
        ("POST", f"/v1/schedules/{sid}/pause"),
        ("POST", f"/v1/schedules/{sid}/resume"),
        ("POST", f"/v1/schedules/{sid}/trigger"),
    ]:
        body = {"paused": True} if method == "PATCH" else None
        response = await api.client.request(method, path, json=body, headers=mallory)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["details"][0]["loc"] == ["path", "schedule_id"]
    assert (await api.client.get("/v1/schedules", headers=mallory)).json()["schedules"] == []
    still = (await api.client.get(f"/v1/schedules/{sid}", headers=bearer(token))).json()
    assert still["paused"] is False


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        (schedule(cron="61 * * * *"), ["body", "cron"], "Bad minute"),
        (schedule(cron="* * * * 9"), ["body", "cron"], "Bad day-of-week"),
        (schedule(cron="* * *"), ["body", "cron"], "expected 5 fields"),
        (schedule(cron="@sometimes"), ["body", "cron"], "unknown alias"),
        (schedule(timezone="Mars/Olympus"), ["body", "timezone"], "unknown IANA time zone"),
        (schedule(timezone="Europe"), ["body", "timezone"], "unknown IANA time zone"),
        (
            schedule(job={"tasks": [{"type": "nope", "payload": {}}]}),
            ["body", "job", "tasks", 0, "type"],
            "unknown task type",
        ),
        (schedule(job={"tasks": []}), ["body", "job", "tasks"], ""),
        (schedule(job=[]), ["body", "job"], "must be an object"),
        ({"cron": "* * * * *", "job": JOB}, ["body", "name"], "required"),
        (schedule(overlap="sometimes"), ["body", "overlap"], "allow, forbid, replace"),
        (schedule(catchup="every"), ["body", "catchup"], "none, latest, all"),
        (schedule(paused="yes"), ["body", "paused"], "true or false"),
        (schedule(name=""), ["body", "name"], "non-empty"),
        (schedule(colour="red"), ["body", "colour"], "unknown field"),
        (schedule(name="a\ud800"), ["body"], "lone surrogate"),
    ],
)
async def test_invalid_schedules_are_422_naming_the_field(
    api: Api, token: str, body: dict[str, Any], loc: list[Any], words: str
) -> None:
    # Encoded here: json.dumps escapes a lone surrogate where httpx would refuse it.
    response = await api.client.post(
        "/v1/schedules",
        content=json.dumps(body),
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["details"][0]["loc"] == loc and words in error["message"]
    assert error["message"].startswith(".".join(str(p) for p in loc))
    assert (await api.client.get("/v1/schedules", headers=bearer(token))).json()["schedules"] == []


async def test_patch_is_checked_the_same_way_and_names_are_unique(api: Api, token: str) -> None:
    h = bearer(token)
    sid = (await api.client.post("/v1/schedules", json=schedule(), headers=h)).json()["id"]
    other = await api.client.post("/v1/schedules", json=schedule(name="other"), headers=h)
    assert other.status_code == 201
    taken = await api.client.post("/v1/schedules", json=schedule(), headers=h)
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "name_taken"
    renamed = await api.client.patch(f"/v1/schedules/{sid}", json={"name": "other"}, headers=h)
    assert renamed.status_code == 409
    bad_zone = await api.client.patch(
        f"/v1/schedules/{sid}", json={"timezone": "Nowhere/Land"}, headers=h
    )
    assert bad_zone.status_code == 422
    assert bad_zone.json()["error"]["details"][0]["loc"] == ["body", "timezone"]
    unchanged = (await api.client.get(f"/v1/schedules/{sid}", headers=h)).json()
    assert unchanged["timezone"] == "Europe/Berlin" and unchanged["name"] == "nightly"
